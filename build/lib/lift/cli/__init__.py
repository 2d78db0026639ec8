"""The `lift` command line."""
