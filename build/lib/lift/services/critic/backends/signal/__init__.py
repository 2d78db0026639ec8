"""The embedded ``signal`` backend: measures the video itself, no weights, CPU only."""

from lift.services.critic.backends.signal.backend import SignalBackend

__all__ = ["SignalBackend"]
