"""The signal critic on degenerate pictures: a verdict with finite numbers, never a crash.

Flat, black, white, tiny, sliver-shaped, pure-noise and perfectly blocky frames
are what a broken generator sends; every measure must stay finite on them (no
division by a zero variance, no empty percentile, no optical-flow pyramid on a
4-px side) and the verdict must still be a proper distribution with a score.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from lift.critique import Dimension, Label
from lift.services.critic.backends.signal import SignalBackend
from lift.serving import Deadline
from lift.video.decode import DecodedVideo


def _video(frames: np.ndarray, fps: float = 8.0) -> DecodedVideo:
    n, h, w = frames.shape[:3]
    return DecodedVideo(
        frames=frames,
        timestamps=np.arange(n, dtype=np.float64) / fps,
        indices=np.arange(n, dtype=np.int64),
        total_frames=n,
        fps=fps,
        duration_s=n / fps,
        width=w,
        height=h,
        container="mp4",
        codec="h264",
    )


def _cases() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    n = 12
    ramp = np.linspace(0, 255, 64, dtype=np.float32)
    moving = np.stack([np.roll(np.tile(ramp, (48, 1)), 3 * t, axis=1) for t in range(n)])
    checker = (np.indices((64, 96)).sum(axis=0) // 8 % 2 * 255).astype(np.uint8)
    return {
        "black": np.zeros((n, 64, 96), np.uint8),
        "white": np.full((n, 64, 96), 255, np.uint8),
        "flat_grey": np.full((n, 64, 96), 128, np.uint8),
        "two_frames": rng.integers(0, 256, (2, 64, 96), dtype=np.uint8),
        "tiny": rng.integers(0, 256, (n, 8, 8), dtype=np.uint8),
        "sliver": rng.integers(0, 256, (n, 4, 1000), dtype=np.uint8),
        "tall_sliver": rng.integers(0, 256, (n, 1000, 4), dtype=np.uint8),
        "pure_noise": rng.integers(0, 256, (n, 120, 160), dtype=np.uint8),
        "checker_blocks": np.stack([checker] * n),
        "moving_ramp": moving.astype(np.uint8),
        "rgb_flat": np.full((n, 32, 32, 3), 40, np.uint8),
    }


CASES = _cases()


@pytest.mark.parametrize("name", sorted(CASES))
def test_degenerate_frames_get_a_finite_verdict(name: str) -> None:
    backend = SignalBackend()
    video = _video(CASES[name])
    judged = backend.prepare(video, "anything", Deadline().check)
    again = backend.prepare(video, "anything", Deadline().check)
    assert judged == again  # deterministic
    by = {d.name: d for d in judged.dimensions}
    assert by[Dimension.SEMANTIC_CONSISTENCY].label is Label.UNASSESSED
    for dim in (Dimension.MOTION_SMOOTHNESS, Dimension.VIDEO_FIDELITY):
        v = by[dim]
        assert v.label is not Label.UNASSESSED, (name, dim)
        assert v.probabilities is not None and v.score is not None
        p = v.probabilities
        assert all(math.isfinite(x) and 0.0 <= x <= 1.0 for x in (p.good, p.normal, p.bad))
        assert p.good + p.normal + p.bad == pytest.approx(1.0, abs=1e-9)
        assert math.isfinite(v.score) and 0.0 <= v.score <= 1.0
        assert v.reasons, (name, dim)
        for issue in v.issues:
            assert 0.0 < issue.severity <= 1.0 and issue.start_s <= issue.end_s
    if judged.dynamic_degree is not None:
        assert 0.0 <= judged.dynamic_degree <= 1.0


def test_blank_frames_are_not_rated_good_fidelity() -> None:
    """A black or white screen has no picture: its fidelity must not read as pristine."""
    backend = SignalBackend()
    for name in ("black", "white"):
        judged = backend.prepare(_video(CASES[name]), "a dog", Deadline().check)
        fid = next(d for d in judged.dimensions if d.name == Dimension.VIDEO_FIDELITY)
        assert fid.label is not Label.GOOD, (name, fid)
