"""Clients of the three services on one base (errors, channel, deadlines, credentials).

Import them from :mod:`lift.client`, the public path; this package holds the code.
"""
