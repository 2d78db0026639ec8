"""The signal critic on the sample clips: each defect is found, placed and scored worse."""

import pytest

from lift.critique import Dimension, Label
from lift.reward import RewardMap, video_reward
from lift.services.critic.backends.signal import SignalBackend
from lift.services.critic.backends.signal.backend import OrdinalModel
from lift.serving import Deadline
from lift.video import VideoLimits, decode_video
from lift.video.samples import SAMPLE_NAMES, SampleClip

# Which dimension each defect must hurt.
DEFECT_DIMENSION = {
    "flicker": Dimension.VIDEO_FIDELITY,
    "frozen": Dimension.MOTION_SMOOTHNESS,
    "judder": Dimension.MOTION_SMOOTHNESS,
    "blur": Dimension.VIDEO_FIDELITY,
    "noise": Dimension.VIDEO_FIDELITY,
    "cut": Dimension.MOTION_SMOOTHNESS,
    "blocky": Dimension.VIDEO_FIDELITY,
    "overexposed": Dimension.VIDEO_FIDELITY,
    "static": Dimension.MOTION_SMOOTHNESS,
}


@pytest.fixture(scope="module")
def judged(mp4s: dict[str, bytes]):
    backend = SignalBackend()
    out = {}
    for name, data in mp4s.items():
        video = decode_video(data, VideoLimits(), pixel_format="gray")
        out[name] = backend.prepare(video, "shapes", Deadline().check)
    return out


def _dim(judgement, dim: Dimension):
    return next(d for d in judgement.dimensions if d.name == dim)


def test_clean_clip_is_good_with_no_issues(judged) -> None:
    for dim in (Dimension.MOTION_SMOOTHNESS, Dimension.VIDEO_FIDELITY):
        verdict = _dim(judged["clean"], dim)
        assert verdict.label is Label.GOOD
        assert verdict.issues == ()
        assert verdict.reasons  # says why it is good
    assert _dim(judged["clean"], Dimension.SEMANTIC_CONSISTENCY).label is Label.UNASSESSED


@pytest.mark.parametrize("name", [n for n in SAMPLE_NAMES if n != "clean"])
def test_defect_twin_scores_worse_and_is_named_where_injected(
    judged, clips: dict[str, SampleClip], name: str
) -> None:
    clip = clips[name]
    dim = DEFECT_DIMENSION[name]
    twin, clean = _dim(judged[name], dim), _dim(judged["clean"], dim)
    assert twin.score is not None and clean.score is not None
    assert twin.score < clean.score
    assert twin.label is not Label.GOOD
    matching = [i for i in twin.issues if i.tag == clip.defect]
    assert matching, f"{name}: expected a {clip.defect!r} issue, got {twin.issues}"
    lo, hi = clip.span_s
    assert any(i.start_s < hi and i.end_s > lo for i in matching), (matching, clip.span_s)
    assert all(0 < i.severity <= 1 for i in twin.issues)
    # One plain sentence per issue, each naming a time.
    assert len(twin.reasons) == len(twin.issues)
    assert all(" s" in r for r in twin.reasons)


def test_static_clip_has_low_dynamic_degree(judged) -> None:
    assert judged["static"].dynamic_degree < 0.05 < judged["clean"].dynamic_degree


def test_identical_input_gives_identical_output(mp4s: dict[str, bytes], judged) -> None:
    backend = SignalBackend()
    video = decode_video(mp4s["judder"], VideoLimits(), pixel_format="gray")
    again = backend.prepare(video, "shapes", Deadline().check)
    assert again == judged["judder"]


def test_probabilities_are_ordinal_and_reward_follows_the_map() -> None:
    model = OrdinalModel()
    clean, mid, bad = model.probabilities(0.0), model.probabilities(1.7), model.probabilities(4.0)
    assert clean.most_likely() is Label.GOOD
    assert mid.most_likely() is Label.NORMAL
    assert bad.most_likely() is Label.BAD
    assert clean.quality() > mid.quality() > bad.quality()
    from lift.critique import DimensionVerdict

    dims = (
        DimensionVerdict.assessed(Dimension.MOTION_SMOOTHNESS, clean),
        DimensionVerdict.assessed(Dimension.VIDEO_FIDELITY, bad),
        DimensionVerdict.unassessed(Dimension.SEMANTIC_CONSISTENCY, "n/a"),
    )
    paper = video_reward(dims, RewardMap())
    assert paper == pytest.approx((RewardMap().expected(clean) + RewardMap().expected(bad)) / 2)
    flat = video_reward(dims, RewardMap(1.0, 1.0, 1.0))
    assert flat == pytest.approx(1.0)
