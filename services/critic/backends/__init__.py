"""Critic backends behind one interface, chosen by name from :data:`BACKENDS`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from lift.services.critic.backends.base import CriticBackend, Judgement

if TYPE_CHECKING:
    from lift.services.critic.settings import CriticSettings


def _signal(settings: CriticSettings) -> CriticBackend:
    from lift.services.critic.backends.signal import SignalBackend

    if settings.calibration is None:
        return SignalBackend()
    from lift.services.critic.backends.signal.calibration import load_calibration

    cal = load_calibration(settings.calibration)  # checked by the settings; re-read here
    return SignalBackend(models=cal.models, calibration=cal.tag)


def _vlm(settings: CriticSettings, vision: str = "torch") -> CriticBackend:
    from lift.services.critic.backends.vlm import VlmOptions, protocols

    assert settings.model is not None  # the settings validator requires it
    backend: CriticBackend = protocols.create(
        settings.protocol,
        VlmOptions(
            model=settings.model,
            adapter=settings.adapter,
            templates=settings.templates,
            device=settings.device,
            dtype=settings.dtype,
            attn_implementation=settings.attn_implementation,
            num_frames=settings.num_frames,
            max_reason_tokens=settings.max_reason_tokens,
            vision=vision,
            vision_graph=settings.vision_graph,
            triton_url=settings.triton_url,
            triton_model=settings.triton_model,
            triton_timeout_s=settings.triton_timeout_s,
        ),
    )
    return backend


def _onnx(settings: CriticSettings) -> CriticBackend:
    return _vlm(settings, vision="onnx")


def _triton(settings: CriticSettings) -> CriticBackend:
    return _vlm(settings, vision="triton")


def _composite(settings: CriticSettings) -> CriticBackend:
    from lift.services.critic.backends.composite import CompositeBackend

    return CompositeBackend(_vlm(settings), _signal(settings), settings.composite_vlm_dimensions)


BACKENDS: dict[str, Callable[[CriticSettings], CriticBackend]] = {
    "signal": _signal,
    "vlm": _vlm,
    "composite": _composite,
    "onnx": _onnx,
    "triton": _triton,
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
