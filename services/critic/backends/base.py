"""The one interface every critic backend implements."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from lift.critique import (
    Dimension,
    DimensionPreference,
    DimensionVerdict,
    ModelInfo,
    Preference,
)
from lift.video import DecodedVideo

ONE_FRAME_REASON = (
    "Not assessed: the video has one frame (a still image): motion cannot be judged. "
    "Send a clip of at least two frames."
)
"""Why motion smoothness is unassessed for a one-frame video, whichever backend judges."""

DEFAULT_PROTOCOL = "labels"
"""What a backend without a ``protocol`` attribute speaks: label probabilities per dimension."""
DEFAULT_SCORE_SEMANTICS = "lift_labels_expected_reward_0_1"
"""Scores p_good + p_normal / 2 in [0, 1]; the reward the expected reward under the reward map."""


def one_frame(video: DecodedVideo) -> bool:
    """Whether ``video`` has too few frames for motion to be judged (one frame, a still)."""
    return video.total_frames < 2 or video.num_sampled < 2


def motion_unassessed(dimensions: tuple[DimensionVerdict, ...]) -> tuple[DimensionVerdict, ...]:
    """``dimensions`` with motion smoothness replaced by unassessed (one-frame reason).

    A still frame has no motion to judge, so no backend may score it: a score
    there would reward a generator for emitting still frames.
    """
    return tuple(
        DimensionVerdict.unassessed(d.name, ONE_FRAME_REASON)
        if d.name == Dimension.MOTION_SMOOTHNESS
        else d
        for d in dimensions
    )


@dataclass(frozen=True)
class Judgement:
    """What a backend says about one video: a verdict per dimension, and how dynamic it is."""

    dimensions: tuple[DimensionVerdict, ...]
    dynamic_degree: float | None = None


@dataclass(frozen=True)
class PairJudgement:
    """What a backend that judges pairs natively says about two videos (a, b) of one prompt."""

    dimensions: tuple[DimensionPreference, ...]
    """One preference per dimension, in :data:`lift.critique.DIMENSIONS` order."""
    overall: Preference
    method: str = "native"
    """How the probabilities came about, e.g. "native" (the model's own pairwise answer)."""


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

    Optional members, read with ``getattr`` by the engine:

    * ``frame_sampling``: "time" (default) or "index", how frames are spread.
    * ``protocol`` (default :data:`DEFAULT_PROTOCOL`) and ``score_semantics``
      (default :data:`DEFAULT_SCORE_SEMANTICS`): what GetInfo reports.
    * ``compare_batch(prepared_pairs, check) -> list[PairJudgement]``: judge
      pairs natively. ``prepared_pairs`` is a sequence of ``(a, b)`` tuples of
      what ``prepare`` returned; one :class:`PairJudgement` per pair, in order.
      Called from the model thread, pairs of concurrent Compare requests
      batched together, when ``batched`` is true. Without it the engine judges
      both videos (in one batch) and derives the preference from the two
      judgements (:mod:`lift.services.critic.pairwise`).
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
