"""The ``composite`` backend: the VLM's verdicts and reasons, the signal critic's evidence.

Both judge the same decoded frames: the video is decoded once in colour at the
signal critic's frame budget; the signal critic measures its luma, and the VLM
sees a uniform subset of its frames. For each dimension one source decides
(label, probabilities, reasons): the VLM for ``vlm_dimensions`` and for any
dimension the signal critic does not assess, the signal critic otherwise. The
signal critic's time-stamped issues are attached to every dimension it
assesses, whichever source decided, so a VLM verdict comes with where in the
video the measurable defects are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import cv2
import numpy as np

from lift.critique import DIMENSIONS, Dimension, DimensionVerdict, ModelInfo
from lift.services.critic.backends.base import CriticBackend, Judgement
from lift.video import DecodedVideo, even_indices


def subsample(video: DecodedVideo, count: int) -> DecodedVideo:
    """``count`` frames of ``video``, evenly spread in time (all of them when it has fewer).

    The decoder's own rule (:func:`lift.video.even_indices`), so a backend
    shown a subset sees what decoding for it alone would have given it.
    """
    n = video.num_sampled
    if n <= count:
        return video
    keep = even_indices(video.timestamps, count)
    return replace(
        video,
        frames=video.frames[keep],
        timestamps=video.timestamps[keep],
        indices=video.indices[keep],
    )


def to_gray(video: DecodedVideo) -> DecodedVideo:
    """The luma of an RGB-decoded video (BT.601 weights, as the decoder's Y plane)."""
    frames = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in video.frames])
    return replace(video, frames=frames)


class CompositeBackend:
    """A VLM backend and the signal backend over the same frames, merged per dimension."""

    assessed: tuple[Dimension, ...] = DIMENSIONS
    pixel_format = "rgb24"
    batched = True

    def __init__(
        self, vlm: CriticBackend, signal: CriticBackend, vlm_dimensions: Sequence[Dimension]
    ) -> None:
        self.vlm = vlm
        self.signal = signal
        self.deciders = {
            d: vlm if (d in vlm_dimensions or d not in signal.assessed) else signal
            for d in DIMENSIONS
        }
        self.max_frames = max(vlm.max_frames, signal.max_frames)
        self.model = ModelInfo(
            backend="composite",
            name=f"{vlm.model.name}+{signal.model.name}",
            version=f"{vlm.model.version}+{signal.model.version}",
        )

    def prepare(self, video: DecodedVideo, prompt: str, check: Callable[[], None]) -> Any:
        """The signal critic's full judgement, and the VLM's prepared input."""
        signal = self.signal.prepare(
            to_gray(subsample(video, self.signal.max_frames)), prompt, check
        )
        vlm = self.vlm.prepare(subsample(video, self.vlm.max_frames), prompt, check)
        return signal, vlm

    def judge_batch(
        self, prepared: Sequence[Any], with_reasons: bool, check: Callable[[], None]
    ) -> list[Judgement]:
        """Judge the batch with the VLM, then merge each video with its signal judgement."""
        signal = self.signal.judge_batch([s for s, _ in prepared], True, check)
        vlm = self.vlm.judge_batch([v for _, v in prepared], with_reasons, check)
        return [self._merge(s, v, with_reasons) for s, v in zip(signal, vlm, strict=True)]

    def _merge(self, signal: Judgement, vlm: Judgement, with_reasons: bool) -> Judgement:
        s_by = {d.name: d for d in signal.dimensions}
        v_by = {d.name: d for d in vlm.dimensions}
        merged = []
        for dim in DIMENSIONS:
            evidence = s_by[dim].issues if dim in self.signal.assessed else ()
            verdict: DimensionVerdict = v_by[dim] if self.deciders[dim] is self.vlm else s_by[dim]
            verdict = replace(verdict, issues=evidence)
            merged.append(verdict if with_reasons else verdict.without_reasons())
        return Judgement(tuple(merged), signal.dynamic_degree)
