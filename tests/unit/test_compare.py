"""The pairwise rule (Bradley–Terry on expected rewards, ties from labels) and its wire forms."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from lift.critique import (
    DIMENSIONS,
    Comparison,
    Dimension,
    DimensionPreference,
    DimensionVerdict,
    LabelProbabilities,
    ModelInfo,
    Preference,
    VideoInfo,
    comparison_from_json,
    comparison_from_proto,
    comparison_to_json,
    comparison_to_proto,
)
from lift.reward import DEFAULT_REWARD_MAP
from lift.services.critic import pairwise

RNG = np.random.default_rng(7)


def _probs(g: float, n: float) -> LabelProbabilities:
    return LabelProbabilities(g, n, 1.0 - g - n)


def _random_probs() -> LabelProbabilities:
    p = RNG.dirichlet([1.0, 1.0, 1.0])
    return LabelProbabilities(float(p[0]), float(p[1]), float(1.0 - p[0] - p[1]))


def _judgement(*probs: LabelProbabilities | None) -> tuple[DimensionVerdict, ...]:
    return tuple(
        DimensionVerdict.unassessed(d, "n/a") if p is None else DimensionVerdict.assessed(d, p)
        for d, p in zip(DIMENSIONS, probs, strict=True)
    )


def _sums_to_one(p: Preference) -> None:
    assert p.prob_a is not None and p.prob_b is not None
    assert p.prob_a + p.prob_b + (p.prob_tie or 0.0) == pytest.approx(1.0, abs=1e-12)
    assert min(p.prob_a, p.prob_b, p.prob_tie or 0.0) >= 0


def test_swapping_a_and_b_swaps_the_probabilities_exactly() -> None:
    for _ in range(200):
        a = _judgement(_random_probs(), _random_probs(), None)
        b = _judgement(_random_probs(), _random_probs(), _random_probs())
        dims_ab, overall_ab, method = pairwise.derive(a, b, DEFAULT_REWARD_MAP)
        dims_ba, overall_ba, _ = pairwise.derive(b, a, DEFAULT_REWARD_MAP)
        assert method == pairwise.EXPECTED_REWARD
        for x, y in zip(dims_ab, dims_ba, strict=True):
            assert x.preference == y.preference.swapped()  # bit for bit
        assert overall_ab == overall_ba.swapped()
        for d in dims_ab:
            if d.preference.compared:
                _sums_to_one(d.preference)
        _sums_to_one(overall_ab)


def test_identical_judgements_prefer_neither() -> None:
    for _ in range(50):
        a = _judgement(_random_probs(), _random_probs(), _random_probs())
        dims, overall, _ = pairwise.derive(a, a, DEFAULT_REWARD_MAP)
        for d in (*(x.preference for x in dims), overall):
            assert d.prob_a == d.prob_b
            assert d.prob_tie is not None and d.prob_tie > 0


def test_certain_labels_give_decisive_or_tied_answers() -> None:
    good, normal, bad = _probs(1, 0), _probs(0, 1), _probs(0, 0)
    p = pairwise.derive(
        _judgement(good, good, good), _judgement(bad, bad, good), DEFAULT_REWARD_MAP
    )
    sc, _ms, vf = (d.preference for d in p[0])
    assert sc.prob_a is not None and sc.prob_a > 0.999 and sc.prob_tie == 0
    assert vf.prob_tie == 1 and vf.prob_a == vf.prob_b == 0  # both certainly good: a tie
    # Normal vs bad: the paper's map puts them 0.15 apart, so less decisive (sigmoid(1.5)).
    nb = pairwise.derive(
        _judgement(normal, None, None), _judgement(bad, None, None), DEFAULT_REWARD_MAP
    )
    assert nb[0][0].preference.prob_a == pytest.approx(1 / (1 + np.exp(-1.5)))


def test_more_reward_for_a_means_a_is_preferred_more() -> None:
    """Monotone: moving a's probability mass towards better labels raises P(a wins | no tie)."""
    b = _judgement(_probs(0.3, 0.4), None, None)
    shares = []
    for g in np.linspace(0.0, 1.0, 21):
        a = _judgement(_probs(float(g), float(1 - g) * 0.5), None, None)
        pref = pairwise.derive(a, b, DEFAULT_REWARD_MAP)[0][0].preference
        assert pref.prob_a is not None and pref.prob_b is not None
        shares.append(pref.prob_a / (pref.prob_a + pref.prob_b))
        r_a = DEFAULT_REWARD_MAP.expected(a[0].probabilities)  # type: ignore[arg-type]
        r_b = DEFAULT_REWARD_MAP.expected(b[0].probabilities)  # type: ignore[arg-type]
        assert (pref.prob_a > pref.prob_b) == (r_a > r_b)
    assert all(x < y for x, y in itertools.pairwise(shares))


def test_unassessed_dimensions_have_no_preference_and_do_not_tip_the_overall() -> None:
    good, bad = _probs(1, 0), _probs(0, 0)
    # Motion: a is good, b is unassessed; fidelity: equal. Overall must not favour a.
    a = _judgement(None, good, bad)
    b = _judgement(None, None, bad)
    dims, overall, _ = pairwise.derive(a, b, DEFAULT_REWARD_MAP)
    assert dims[0].preference == Preference() and dims[1].preference == Preference()
    assert overall.prob_a == overall.prob_b
    nothing = pairwise.derive(_judgement(None, None, None), a, DEFAULT_REWARD_MAP)
    assert nothing[1] == Preference() and not nothing[1].compared


def test_score_only_judgements_use_the_scores_without_ties() -> None:
    a = tuple(
        DimensionVerdict(d, DimensionVerdict.assessed(d, _probs(1, 0)).label, 0.8)
        for d in DIMENSIONS
    )
    b = tuple(DimensionVerdict(d, a[0].label, 0.3) for d in DIMENSIONS)
    dims, overall, method = pairwise.derive(a, b, DEFAULT_REWARD_MAP)
    assert method == pairwise.SCORES
    for p in (*(d.preference for d in dims), overall):
        assert p.prob_tie is None and p.prob_a == pytest.approx(1 / (1 + np.exp(-5)))
        _sums_to_one(p)


def test_bad_inputs_to_the_rule_are_refused() -> None:
    a = _judgement(_probs(1, 0), None, None)
    with pytest.raises(ValueError, match="same dimensions"):
        pairwise.derive(a, a[:2], DEFAULT_REWARD_MAP)
    with pytest.raises(ValueError, match="temperature"):
        pairwise.bradley_terry(0.5, 0.2, None, temperature=0)
    with pytest.raises(ValueError, match="sum to 1"):
        Preference(0.5, 0.6, 0.1)
    with pytest.raises(ValueError, match="both set"):
        Preference(0.5, None)


def test_a_comparison_survives_json_and_protobuf() -> None:
    video = VideoInfo(49, 8.0, 6.125, 64, 48, 8, "mp4", "h264", 1.4)
    dims, overall, method = pairwise.derive(
        _judgement(None, _probs(0.7, 0.2), _probs(0.1, 0.1)),
        _judgement(None, _probs(0.2, 0.5), _probs(0.1, 0.1)),
        DEFAULT_REWARD_MAP,
    )
    c = Comparison(
        dims, overall, method, ModelInfo("signal", "lift-signal", "1.0"), video, video, "p"
    )
    via_proto = comparison_from_proto(comparison_to_proto(c))
    assert via_proto == c
    obj = comparison_to_json(c)
    assert [d["name"] for d in obj["dimensions"]] == [d.value for d in DIMENSIONS]
    assert obj["dimensions"][0] == {
        "name": "semantic_consistency",
        "prob_a": None,
        "prob_b": None,
        "prob_tie": None,
    }
    assert set(obj["videos"]) == {"a", "b"} and obj["videos"]["a"]["fps_analysed"] == 1.4
    back = comparison_from_json(obj)
    assert back.dimension(Dimension.VIDEO_FIDELITY).prob_a == pytest.approx(
        c.dimension(Dimension.VIDEO_FIDELITY).prob_a, abs=1e-6
    )
    assert back.method == method and back.video_a == video
    assert DimensionPreference(Dimension.MOTION_SMOOTHNESS).preference == Preference()
