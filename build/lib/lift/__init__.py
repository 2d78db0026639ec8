"""The LiFT suite: shared code for the critic, generator and trainer services."""

__version__ = "0.1.0"
