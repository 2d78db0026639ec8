"""The composite backend: VLM verdicts and reasons with the signal critic's evidence."""

from __future__ import annotations

from pathlib import Path

import pytest

from lift.critique import Dimension, Label
from lift.serving import Deadline
from lift.video import VideoLimits, decode_video
from services.critic.backends.composite import CompositeBackend
from services.critic.backends.signal import SignalBackend
from services.critic.backends.vlm import VlmBackend, VlmOptions

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
