"""Fitting of the signal critic's natural-scene reference (see README.md)."""
