"""Pairwise preference from two pointwise judgements (for critics that judge one video at a time).

A critic of the LiFT-label kind judges each video on its own; a comparison of
two videos a and b of one prompt is derived from the two judgements, per
dimension, by a Bradley–Terry model on the expected rewards plus a tie term:

    r_a, r_b  = expected reward of each video under the reward map
                (sum over labels of p(label) * reward(label), paper Eq. 2)
    s_a       = sigmoid((r_a - r_b) / T),   s_b = sigmoid((r_b - r_a) / T)
    prob_tie  = sum over labels of p_a(label) * p_b(label)
                (the chance both videos land on the same label)
    prob_a    = (1 - prob_tie) * s_a,       prob_b = (1 - prob_tie) * s_b

with ``T`` = :data:`TEMPERATURE` = 0.1 reward units. Under the paper's map
(0.9 / 0.2 / 0.05) a certain Good against a certain Bad (gap 0.85) gives
s_a = sigmoid(8.5) ≈ 0.9998, Good against Normal (gap 0.7) ≈ 0.999, and Normal
against Bad (gap 0.15) sigmoid(1.5) ≈ 0.82: a label apart is decisive except
between the two low labels, which the paper's map itself puts close together.

Properties (tested): the three probabilities sum to 1; swapping a and b swaps
prob_a and prob_b exactly and keeps prob_tie; identical judgements give
prob_a == prob_b; prob_a > prob_b exactly when r_a > r_b, and
prob_a / (prob_a + prob_b) grows with r_a - r_b.

A dimension either video has unassessed has no preference (all None). When a
judgement carries scores without label probabilities (a critic that only
scores), the scores take the place of r and there is no tie term
(``prob_tie`` None, method ``bradley_terry_scores``).

Overall: the same rule on each video's reward taken over the dimensions *both*
videos have assessed (so a dimension one of them lacks cannot tip it), with
prob_tie the mean of those dimensions' ties.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from lift.critique import ASSESSED_LABELS, DimensionPreference, DimensionVerdict, Label, Preference
from lift.reward import RewardMap

TEMPERATURE = 0.1
"""Bradley–Terry temperature, in reward units (see the module docstring)."""

EXPECTED_REWARD = "bradley_terry_expected_reward"
"""Method name: Bradley–Terry on expected rewards from label probabilities, ties from labels."""
SCORES = "bradley_terry_scores"
"""Method name: Bradley–Terry on per-dimension scores, no ties."""


def _sigmoid(x: float) -> float:
    # The two branches keep exp() from overflowing for large gaps.
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def bradley_terry(
    r_a: float, r_b: float, tie: float | None = None, temperature: float = TEMPERATURE
) -> Preference:
    """The preference of a over b for rewards ``r_a``, ``r_b`` and a tie probability ``tie``.

    ``s_a`` and ``s_b`` are computed from the two signed gaps separately, so
    exchanging the arguments exchanges the results bit for bit.
    """
    if temperature <= 0:
        raise ValueError(f"the temperature must be > 0, got {temperature}")
    s_a = _sigmoid((r_a - r_b) / temperature)
    s_b = _sigmoid((r_b - r_a) / temperature)
    rest = 1.0 - (tie or 0.0)
    return Preference(rest * s_a, rest * s_b, tie)


def label_tie(a: DimensionVerdict, b: DimensionVerdict) -> float:
    """The chance that both videos land on the same label (probabilities required)."""
    assert a.probabilities is not None and b.probabilities is not None
    pa, pb = a.probabilities.as_dict(), b.probabilities.as_dict()
    return sum(pa[lab.value] * pb[lab.value] for lab in ASSESSED_LABELS)


def _assessed(v: DimensionVerdict) -> bool:
    return v.label != Label.UNASSESSED and v.score is not None


def derive(
    a: Sequence[DimensionVerdict],
    b: Sequence[DimensionVerdict],
    reward_map: RewardMap,
    temperature: float = TEMPERATURE,
) -> tuple[tuple[DimensionPreference, ...], Preference, str]:
    """Per-dimension preferences, the overall one, and the method name, from two judgements.

    ``a`` and ``b`` list the same dimensions in the same order.
    """
    if [d.name for d in a] != [d.name for d in b]:
        raise ValueError("the two judgements must list the same dimensions in the same order")
    both = [(va, vb) for va, vb in zip(a, b, strict=True) if _assessed(va) and _assessed(vb)]
    use_probs = all(
        va.probabilities is not None and vb.probabilities is not None for va, vb in both
    )
    method = EXPECTED_REWARD if use_probs else SCORES

    def value(v: DimensionVerdict) -> float:
        if use_probs:
            assert v.probabilities is not None
            return reward_map.expected(v.probabilities)
        assert v.score is not None
        return v.score

    prefs: dict[int, Preference] = {}
    rewards_a, rewards_b, ties = [], [], []
    for i, (va, vb) in enumerate(zip(a, b, strict=True)):
        if not (_assessed(va) and _assessed(vb)):
            continue
        r_a, r_b = value(va), value(vb)
        tie = label_tie(va, vb) if use_probs else None
        prefs[i] = bradley_terry(r_a, r_b, tie, temperature)
        rewards_a.append(r_a)
        rewards_b.append(r_b)
        if tie is not None:
            ties.append(tie)
    dims = tuple(DimensionPreference(v.name, prefs.get(i, Preference())) for i, v in enumerate(a))
    if not rewards_a:
        return dims, Preference(), method
    overall = bradley_terry(
        sum(rewards_a) / len(rewards_a),
        sum(rewards_b) / len(rewards_b),
        sum(ties) / len(ties) if ties else None,
        temperature,
    )
    return dims, overall, method
