"""Development tools (not installed with the package): stub generation, launchers, process helpers."""
