"""The one interface every critic backend implements."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from lift.critique import Dimension, DimensionVerdict, ModelInfo
from lift.video import DecodedVideo


@dataclass(frozen=True)
class Judgement:
    """What a backend says about one video: a verdict per dimension, and how dynamic it is."""

    dimensions: tuple[DimensionVerdict, ...]
    dynamic_degree: float | None = None


class CriticBackend(Protocol):
    """A critic backend: judges decoded frames against a prompt.

    Backends are pure compute: no transport types, no I/O. The engine decodes
    the video as the backend asks (``max_frames``, ``pixel_format``) and turns
    the judgement into a critique (reward, model and video info).
    """

    model: ModelInfo
    assessed: tuple[Dimension, ...]
    max_frames: int
    """Most frames the backend wants, uniformly sampled over the video."""
    pixel_format: str
    """"rgb24" or "gray"."""

    def judge(
        self,
        video: DecodedVideo,
        prompt: str,
        *,
        with_reasons: bool,
        check: Callable[[], None],
    ) -> Judgement:
        """Judge ``video`` against ``prompt``; call ``check()`` between stages (it raises to stop)."""
        ...
