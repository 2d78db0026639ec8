"""The LiFT services: critic (this issue), generator and trainer (later)."""
