"""The composite backend: VLM verdicts and reasons with the signal critic's evidence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lift.critique import Dimension, Label
from lift.services.critic.backends.composite import CompositeBackend
from lift.services.critic.backends.signal import SignalBackend
from lift.services.critic.backends.vlm import VlmBackend, VlmOptions
from lift.serving import Deadline
from lift.video import VideoLimits, decode_video

NEVER = Deadline().check


@pytest.fixture(scope="module")
def parts(tiny_critic_dir: Path):
    return VlmBackend(VlmOptions(model=tiny_critic_dir)), SignalBackend()


def _judge(backend, data: bytes, prompt: str = "a ball"):
    video = decode_video(data, VideoLimits(), max_samples=backend.max_frames)
    return backend.judge_batch([backend.prepare(video, prompt, NEVER)], True, NEVER)[0]


def _dims(j):
    return {d.name: d for d in j.dimensions}


def test_vlm_decides_and_signal_issues_are_attached(parts, mp4s) -> None:
    vlm, signal = parts
    composite = CompositeBackend(vlm, signal, list(Dimension))
    merged = _dims(_judge(composite, mp4s["flicker"]))
    alone = _dims(_judge(vlm, mp4s["flicker"]))
    sig = _dims(_judge(signal, mp4s["flicker"]))
    for dim in Dimension:
        assert merged[dim].label == alone[dim].label
        assert merged[dim].probabilities == alone[dim].probabilities
        assert merged[dim].reasons == alone[dim].reasons
    fidelity = merged[Dimension.VIDEO_FIDELITY]
    assert "flicker" in {i.tag for i in fidelity.issues}
    assert fidelity.issues == sig[Dimension.VIDEO_FIDELITY].issues
    assert merged[Dimension.SEMANTIC_CONSISTENCY].issues == ()
    assert composite.model.backend == "composite"


def test_signal_can_decide_the_dimensions_it_assesses(parts, mp4s) -> None:
    vlm, signal = parts
    composite = CompositeBackend(vlm, signal, [Dimension.SEMANTIC_CONSISTENCY])
    merged = _dims(_judge(composite, mp4s["frozen"]))
    sig = _dims(_judge(signal, mp4s["frozen"]))
    vlm_only = _dims(_judge(vlm, mp4s["frozen"]))
    motion = merged[Dimension.MOTION_SMOOTHNESS]
    assert motion.label is Label.BAD and motion == sig[Dimension.MOTION_SMOOTHNESS]
    assert (
        merged[Dimension.SEMANTIC_CONSISTENCY].reasons
        == vlm_only[Dimension.SEMANTIC_CONSISTENCY].reasons
    )


def test_semantic_consistency_always_comes_from_the_vlm(parts) -> None:
    vlm, signal = parts
    composite = CompositeBackend(vlm, signal, [])
    assert composite.deciders[Dimension.SEMANTIC_CONSISTENCY] is vlm
    assert composite.deciders[Dimension.MOTION_SMOOTHNESS] is signal


def test_odd_shapes_are_judged_or_refused_with_a_reason(parts) -> None:
    """One frame, 16x16, and a 16x4000 sliver: no crash, a clear refusal where needed."""
    from lift.errors import InvalidInput
    from lift.video.encode import encode_video

    vlm, signal = parts
    composite = CompositeBackend(vlm, signal, list(Dimension))
    rng = np.random.default_rng(0)
    one = encode_video(rng.integers(0, 255, (1, 64, 64, 3), dtype=np.uint8), 8, "gif")
    small = encode_video(rng.integers(0, 255, (4, 16, 16, 3), dtype=np.uint8), 8, "mp4")
    sliver = encode_video(rng.integers(0, 255, (3, 16, 4000, 3), dtype=np.uint8), 8, "mp4")
    for data in (one, small):
        assert len(_judge(composite, data).dimensions) == 3
    assert _judge(signal, sliver).dynamic_degree is not None
    with pytest.raises(InvalidInput, match="aspect ratio"):
        _judge(composite, sliver)
