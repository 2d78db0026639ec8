"""Template presets for published critic checkpoints (TOML data; see lift/templates.py)."""
