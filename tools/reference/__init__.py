"""Parity checks against the paper's reference critic (see README.md here)."""
