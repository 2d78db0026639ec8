"""The critic service: judges a video against its prompt and says why."""
