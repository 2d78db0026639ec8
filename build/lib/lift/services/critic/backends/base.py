"""The one interface every critic backend implements."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from lift.critique import Dimension, DimensionVerdict, ModelInfo
from lift.video import DecodedVideo


@dataclass(frozen=True)
class Judgement:
    """What a backend says about one video: a verdict per dimension, and how dynamic it is."""

    dimensions: tuple[DimensionVerdict, ...]
    dynamic_degree: float | None = None


class CriticBackend(Protocol):
    """A critic backend: judges decoded frames against a prompt, in two steps.

    ``prepare`` runs in the request's worker thread, once per video (CPU work:
    measuring, resizing, tokenizing). ``judge_batch`` takes prepared videos and
    gives one judgement each; when ``batched`` is true the engine gathers the
    prepared videos of concurrent requests into micro-batches and calls it from
    one model thread, otherwise it calls it per request.

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
    batched: bool
    """Whether judging benefits from batching across requests."""

    def prepare(self, video: DecodedVideo, prompt: str, check: Callable[[], None]) -> Any:
        """Per-video work before judging; call ``check()`` between stages (it raises to stop)."""
        ...

    def judge_batch(
        self, prepared: Sequence[Any], with_reasons: bool, check: Callable[[], None]
    ) -> list[Judgement]:
        """One judgement per prepared video, in order."""
        ...
