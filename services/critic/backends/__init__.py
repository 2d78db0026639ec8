"""Critic backends behind one interface, chosen by name from :data:`BACKENDS`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from services.critic.backends.base import CriticBackend, Judgement

if TYPE_CHECKING:
    from services.critic.settings import CriticSettings


def _signal(settings: CriticSettings) -> CriticBackend:
    from services.critic.backends.signal import SignalBackend

    return SignalBackend()


BACKENDS: dict[str, Callable[[CriticSettings], CriticBackend]] = {
    "signal": _signal,
}
"""Backend name -> factory. Factories import their module lazily so `--help` stays instant."""


def create_backend(settings: CriticSettings) -> CriticBackend:
    """Build the backend the settings name."""
    try:
        factory = BACKENDS[settings.backend]
    except KeyError:
        raise ValueError(
            f"LIFT_CRITIC_BACKEND={settings.backend!r} is not a known backend; "
            f"choose one of {', '.join(sorted(BACKENDS))}"
        ) from None
    return factory(settings)


__all__ = ["BACKENDS", "CriticBackend", "Judgement", "create_backend"]
