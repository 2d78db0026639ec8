"""The feedback service: people rate generated videos with reasons; LiFT-HRA export."""
