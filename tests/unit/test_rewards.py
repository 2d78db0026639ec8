"""lift.rewards without a service: layouts, value ranges, the y4m encoder, rewards from critiques."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from lift.clients.critic import CriticError
from lift.critique import (
    Critique,
    Dimension,
    DimensionVerdict,
    LabelProbabilities,
    ModelInfo,
    VideoInfo,
)
from lift.rewards import (
    AsyncCriticReward,
    CriticReward,
    detect_layout,
    encode_y4m,
    normalize_rewards,
    to_frames,
    y4m_size,
)
from lift.video import VideoLimits, decode_video


def _smooth_clip(t: int = 6, h: int = 36, w: int = 52, seed: int = 0) -> np.ndarray:
    """(T, H, W, 3) uint8 with colour that varies slowly (4:2:0 keeps it to rounding)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    frames = []
    for i in range(t):
        phase = rng.uniform(0, 1, 3) + i * 0.1
        rgb = [
            128 + 100 * np.sin(x / 29 + 2 * np.pi * phase[c]) * np.cos(y / 31 + c) for c in range(3)
        ]
        frames.append(np.stack(rgb, -1))
    return np.clip(np.rint(np.stack(frames)), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- layouts and ranges


@pytest.mark.parametrize(
    ("shape", "layout"),
    [
        ((2, 5, 16, 24, 3), "BTHWC"),
        ((2, 5, 3, 16, 24), "BTCHW"),
        ((2, 3, 5, 16, 24), "BCTHW"),
    ],
)
def test_layout_is_the_one_with_three_channels(shape, layout) -> None:
    assert detect_layout(shape) == layout


def test_ambiguous_and_bad_shapes_are_refused_naming_the_fix() -> None:
    with pytest.raises(ValueError, match=r"ambiguous.*\['BTCHW', 'BCTHW'\].*pass layout="):
        detect_layout((2, 3, 3, 16, 24))
    assert detect_layout((2, 3, 3, 16, 24), "BCTHW") == "BCTHW"
    with pytest.raises(ValueError, match="axis 2, which has size 16"):
        detect_layout((2, 5, 16, 24, 3), "BTCHW")
    with pytest.raises(ValueError, match="no axis of size 3"):
        detect_layout((2, 5, 4, 16, 24))
    with pytest.raises(ValueError, match=r"add a batch axis"):
        detect_layout((5, 16, 24, 3))
    with pytest.raises(ValueError, match="layout must be one of"):
        detect_layout((2, 5, 16, 24, 3), "THWC")


def test_float_ranges_and_layouts_give_the_same_frames() -> None:
    clip = _smooth_clip()
    u8 = np.stack([clip, clip[::-1]])  # (B, T, H, W, 3)
    unit = u8.astype(np.float32) / 255.0
    signed = unit * 2 - 1
    expected = to_frames(u8)
    for videos in (
        unit.transpose(0, 1, 4, 2, 3),  # BTCHW in [0, 1]
        signed.transpose(0, 4, 1, 2, 3),  # BCTHW in [-1, 1]
        torch.from_numpy(signed.transpose(0, 1, 4, 2, 3)).to(torch.bfloat16),
        torch.from_numpy(unit).requires_grad_(),  # BTHWC float tensor needing grad
        [torch.from_numpy(v.transpose(0, 3, 1, 2)) for v in signed],  # a list of 4-D
    ):
        got = to_frames(videos)
        assert len(got) == 2
        for a, b in zip(got, expected, strict=True):
            assert a.dtype == np.uint8 and a.shape == b.shape
            # bfloat16 keeps 8 bits of mantissa: within 2 grey levels of the uint8 source
            assert np.abs(a.astype(int) - b.astype(int)).max() <= 2


def test_range_detection_is_over_the_batch_and_can_be_fixed() -> None:
    # A bright [-1, 1] video alone looks like [0, 1]; next to a dark one it is read right.
    bright = np.full((4, 16, 16, 3), 0.5, np.float32)
    dark = np.full((4, 16, 16, 3), -0.5, np.float32)
    both = to_frames(np.stack([bright, dark]))
    assert both[0][0, 0, 0, 0] == round(0.75 * 255) and both[1][0, 0, 0, 0] == round(0.25 * 255)
    alone = to_frames(bright[None])
    assert alone[0][0, 0, 0, 0] == round(0.5 * 255)
    fixed = to_frames(bright[None], value_range=(-1, 1))
    assert fixed[0][0, 0, 0, 0] == round(0.75 * 255)


def test_bad_values_dtypes_and_prompts_are_refused() -> None:
    ok = np.zeros((2, 4, 16, 16, 3), np.float32)
    with pytest.raises(ValueError, match=r"span \[255, 255\].*send uint8, or divide by 255"):
        to_frames(ok + 255)
    with pytest.raises(ValueError, match="NaN"):
        to_frames(np.where(ok == 0, np.nan, ok))
    # Which video of a batch diverged is named (the message did not say).
    one_bad = np.zeros((4, 4, 16, 16, 3), np.float32)
    one_bad[2, 1, 3, 3, 0] = np.inf
    with pytest.raises(ValueError, match=r"^video 2 of the batch holds NaN or infinite"):
        to_frames(one_bad)
    with pytest.raises(ValueError, match=r"uint8 .* or float .* got int64"):
        to_frames(ok.astype(np.int64))
    with pytest.raises(ValueError, match="value_range is for float videos"):
        to_frames(ok.astype(np.uint8), value_range=(0, 1))
    with pytest.raises(ValueError, match="the batch is empty"):
        to_frames([])
    with pytest.raises(ValueError, match="video 1 of the list has shape"):
        to_frames([ok[0], ok])

    reward = CriticReward(_FakeClient([]))
    with pytest.raises(ValueError, match="2 videos and 3 prompts"):
        reward(ok, ["a", "b", "c"])
    with pytest.raises(ValueError, match=r"not one string .*\[prompt\] \* len"):
        reward(ok, "a cat")
    with pytest.raises(ValueError, match="prompt 1 is a int"):
        reward(ok, ["a", 3])  # type: ignore[list-item]


# ---------------------------------------------------------------- the encoder


@pytest.mark.parametrize("chroma", ["420", "444"])
@pytest.mark.parametrize(("h", "w"), [(36, 52), (35, 51)])
def test_y4m_round_trip_through_the_critics_decoder(chroma, h, w) -> None:
    clip = _smooth_clip(t=7, h=h, w=w)
    data = encode_y4m(clip, 12.0, chroma)
    assert len(data) == y4m_size(7, h, w, 12.0, chroma)
    video = decode_video(data, VideoLimits(), max_samples=100)
    assert video.frames.shape == clip.shape
    assert video.total_frames == 7 and video.fps == pytest.approx(12.0)
    assert video.duration_s == pytest.approx(7 / 12)
    diff = np.abs(video.frames.astype(int) - clip.astype(int))
    # 4:4:4: rounding of the YUV conversion only; 4:2:0: plus colour averaged over 2x2.
    assert diff.max() <= (2 if chroma == "444" else 6), diff.max()
    assert diff.mean() < (0.8 if chroma == "444" else 1.5)
    # The luma the signal critic reads is the frames' own, to rounding.
    gray = decode_video(data, VideoLimits(), max_samples=100, pixel_format="gray")
    luma = clip.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    assert np.abs(gray.frames - luma).max() <= 1.0


def test_sharp_colour_edges_lose_colour_only_in_420() -> None:
    clip = np.zeros((2, 16, 16, 3), np.uint8)
    clip[:, :, ::2, 0] = 255  # red on every other column: 4:2:0 averages it away
    d420 = decode_video(encode_y4m(clip, 8.0, "420"), VideoLimits())
    d444 = decode_video(encode_y4m(clip, 8.0, "444"), VideoLimits())
    assert np.abs(d444.frames.astype(int) - clip).max() <= 2
    assert np.abs(d420.frames.astype(int) - clip).max() > 50


def test_a_typical_generated_video_fits_the_default_limit() -> None:
    assert y4m_size(49, 480, 720, 8.0) < VideoLimits().max_bytes
    assert y4m_size(49, 480, 720, 8.0, "444") < VideoLimits().max_bytes
    assert y4m_size(121, 720, 1280, 24.0) > VideoLimits().max_bytes


def test_encoder_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="uint8"):
        encode_y4m(np.zeros((2, 8, 8, 3), np.float32), 8.0)
    with pytest.raises(ValueError, match="at least one frame"):
        encode_y4m(np.zeros((0, 8, 8, 3), np.uint8), 8.0)
    with pytest.raises(ValueError, match="fps"):
        encode_y4m(np.zeros((2, 8, 8, 3), np.uint8), 0.0)


# ---------------------------------------------------------------- rewards from critiques


def _critique(motion: float | None, fidelity: float, version: str = "1.0") -> Critique:
    def verdict(name: Dimension, score: float | None) -> DimensionVerdict:
        if score is None:
            return DimensionVerdict.unassessed(name, "one frame has no motion")
        return DimensionVerdict.assessed(name, LabelProbabilities(score, 1 - score, 0.0))

    dims = (
        DimensionVerdict.unassessed(Dimension.SEMANTIC_CONSISTENCY, "signal"),
        verdict(Dimension.MOTION_SMOOTHNESS, motion),
        verdict(Dimension.VIDEO_FIDELITY, fidelity),
    )
    scores = [d.score for d in dims if d.score is not None]
    return Critique(
        dims,
        sum(scores) / len(scores),
        ModelInfo("fake", "fake-critic", version),
        VideoInfo(4, 8.0, 0.5, 16, 16, 4, "yuv4mpegpipe", "rawvideo"),
    )


class _FakeClient:
    """Stands in for CriticClient: answers queued outcomes and records the calls."""

    def __init__(self, answers: list, max_batch_items: int = 64, max_video_bytes: int = 2**26):
        self.answers = list(answers)
        self.calls: list[list[tuple[bytes, str]]] = []
        self.limits = {"max_batch_items": max_batch_items, "max_video_bytes": max_video_bytes}

    def info(self) -> dict:
        return {
            "assessed_dimensions": ["motion_smoothness", "video_fidelity"],
            "limits": self.limits,
        }

    def score(self, items):
        self.calls.append(list(items))
        if self.answers and isinstance(self.answers[0], CriticError):
            raise self.answers.pop(0)
        out, self.answers = self.answers[: len(items)], self.answers[len(items) :]
        return out


def _videos(n: int) -> np.ndarray:
    return np.stack([_smooth_clip(t=4, h=16, w=16, seed=i) for i in range(n)])


def test_weighted_dimensions_fallback_and_errors() -> None:
    fake = _FakeClient(
        [
            _critique(0.8, 0.4),
            CriticError("INVALID_ARGUMENT", "the prompt has 5000 characters"),
            _critique(None, 0.9),  # motion unassessed: no weighted reward
        ]
    )
    reward = CriticReward(
        fake, weights={"motion_smoothness": 3.0, "video_fidelity": 1.0}, fallback=-1.0
    )
    rewards, info = reward(_videos(3), ["a", "b" * 10, "c"])
    assert len(fake.calls) == 1 and len(fake.calls[0]) == 3  # one Score call for the batch
    assert fake.calls[0][0][0].startswith(b"YUV4MPEG2 W16 H16 F8:1")
    s_motion = 0.8 + 0.5 * 0.2
    s_fid = 0.4 + 0.5 * 0.6
    assert rewards[0] == pytest.approx((3 * s_motion + s_fid) / 4, abs=1e-6)
    assert rewards[1] == -1.0 and rewards[2] == -1.0
    assert info["failed"] == [False, True, True]
    assert [e["index"] for e in info["errors"]] == [1, 2]
    assert info["errors"][0]["code"] == "INVALID_ARGUMENT"
    assert (
        "motion_smoothness was not assessed: one frame has no motion"
        in info["errors"][1]["message"]
    )
    assert info["dimensions"]["video_fidelity"][2] == pytest.approx(0.95)
    assert info["scorer_version"] == "1.0" and info["frames_sent"] == [4, 4, 4]


def test_the_critics_reward_without_dimensions_and_normalization() -> None:
    answers = [_critique(0.2, 0.2), _critique(0.6, 0.6), _critique(1.0, 1.0)]
    raw, _ = CriticReward(_FakeClient(answers))(_videos(3), ["p"] * 3)
    assert raw.tolist() == pytest.approx([c.reward for c in answers], abs=1e-6)
    z, info = CriticReward(_FakeClient(answers), normalize="batch")(_videos(3), ["p"] * 3)
    assert z.mean() == pytest.approx(0, abs=1e-6) and z.std() == pytest.approx(1, abs=1e-5)
    assert info["raw_rewards"] == pytest.approx(raw.tolist(), abs=1e-6)
    r, _ = CriticReward(_FakeClient(answers), normalize="rank")(_videos(3), ["p"] * 3)
    assert r.tolist() == [0.0, 0.5, 1.0]
    ranks = normalize_rewards(
        np.array([3.0, 1.0, 3.0, 9.0]), np.array([True, True, True, False]), "rank"
    )
    assert ranks[:3].tolist() == [0.75, 0.0, 0.75] and ranks[3] == 9.0


def test_a_batch_over_the_limits_is_split_in_order() -> None:
    answers = [_critique(0.1 * i, 0.5) for i in range(5)]
    fake = _FakeClient(answers, max_batch_items=2)
    rewards, info = CriticReward(fake)(_videos(5), [f"p{i}" for i in range(5)])
    assert [len(c) for c in fake.calls] == [2, 2, 1] and info["calls"] == 3
    assert [p for call in fake.calls for _, p in call] == [f"p{i}" for i in range(5)]
    assert rewards.tolist() == pytest.approx([c.reward for c in answers], abs=1e-6)
    size = y4m_size(4, 16, 16, 8.0)
    fake = _FakeClient(answers[:3], max_video_bytes=size - 1)
    rewards, info = CriticReward(fake, fallback=math.nan)(_videos(3), ["p"] * 3)
    assert fake.calls == [] and np.isnan(rewards).all()
    assert "max_video_bytes is " + str(size - 1) in info["errors"][0]["message"]


def test_a_failed_call_raises_unless_asked_not_to() -> None:
    down = CriticError("UNAVAILABLE", "could not reach the critic")
    with pytest.raises(CriticError, match="UNAVAILABLE"):
        CriticReward(_FakeClient([down]))(_videos(2), ["p", "q"])
    rewards, info = CriticReward(_FakeClient([down]), raise_on_call_error=False)(
        _videos(2), ["p", "q"]
    )
    assert rewards.tolist() == [0.0, 0.0] and info["failed"] == [True, True]
    assert {e["code"] for e in info["errors"]} == {"UNAVAILABLE"}


def test_settings_are_checked() -> None:
    fake = _FakeClient([])
    with pytest.raises(ValueError, match="unknown dimension 'sharpness'"):
        CriticReward(fake, dimensions=["sharpness"])
    with pytest.raises(ValueError, match="2 dimensions and 1 weights"):
        CriticReward(fake, dimensions=["motion_smoothness", "video_fidelity"], weights=[1.0])
    with pytest.raises(ValueError, match="sum to 0"):
        CriticReward(fake, weights={"video_fidelity": 0.0})
    with pytest.raises(ValueError, match="normalize must be one of"):
        CriticReward(fake, normalize="zscore")
    with pytest.raises(ValueError, match="speaks gRPC"):
        AsyncCriticReward("http://localhost:8080")
    with pytest.raises(ValueError, match=r"does not assess \['semantic_consistency'\]"):
        CriticReward(fake, dimensions="semantic_consistency")(_videos(1), ["p"])


def test_flow_grpo_and_ddpo_shapes() -> None:
    answers = [_critique(0.5, 0.7), _critique(None, 0.3)]
    reward = CriticReward(_FakeClient(answers * 2), dimensions=["video_fidelity"])
    scores, _ = reward.flow_grpo()(_videos(2), ["p", "q"], [{}, {}], only_strict=True)
    assert set(scores) == {"video_fidelity", "lift", "avg"}
    assert (
        scores["avg"] == pytest.approx([0.85, 0.65], abs=1e-6) and scores["avg"] == scores["lift"]
    )
    rewards, meta = reward.ddpo()(torch.from_numpy(_videos(2)), ("p", "q"), ({}, {}))
    assert torch.as_tensor(rewards).dtype == torch.float32 and meta["calls"] == 1


def test_importing_lift_rewards_pulls_no_torch_or_av() -> None:
    code = (
        "import sys, lift.rewards; "
        "bad = [m for m in ('torch', 'av', 'cv2') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
