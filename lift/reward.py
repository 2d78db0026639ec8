"""The reward of the paper (Eq. 2), written once for the whole suite.

A judged dimension's reward is the expectation of a label -> reward map under
the critic's label probabilities, ``Σ_label p(label) · r(label)``; a label given
without probabilities (human ratings, offline data) counts as certain. A video's
reward is the mean over the dimensions that were judged, and there is none when
no dimension was. The critic reports this reward, the trainer weights its loss
and evaluates with it (online critiques and offline labels alike), and the HRA
tools compare the critic's reward with the human labels' reward through it.

:data:`DEFAULT_REWARD_MAP` (good 0.9, normal 0.2, bad 0.05) is the paper's map
and the one default of the critic's settings and the trainer's run config.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from lift.critique import DimensionVerdict, Label, LabelProbabilities

DEFAULT_GOOD = 0.9
"""Paper Eq. 2: the reward of a 'good' label."""
DEFAULT_NORMAL = 0.2
"""Paper Eq. 2: the reward of a 'normal' label."""
DEFAULT_BAD = 0.05
"""Paper Eq. 2: the reward of a 'bad' label."""


def check_reward_map(good: float, normal: float, bad: float) -> None:
    """Raise ValueError unless every reward is in [0, 1] and good >= normal >= bad.

    The one validation of a reward map, used by the critic's settings and the
    trainer's run config as well as by :class:`RewardMap` itself.
    """
    values = {"good": good, "normal": normal, "bad": bad}
    for name, value in values.items():
        if not (isinstance(value, int | float) and math.isfinite(value) and 0 <= value <= 1):
            raise ValueError(f"the reward of '{name}' must be a number in [0, 1] (got {value!r})")
    if not good >= normal >= bad:
        raise ValueError(
            f"rewards must be ordered good >= normal >= bad (got {good}, {normal}, {bad})"
        )


@dataclass(frozen=True)
class RewardMap:
    """Reward per label (paper Eq. 2 defaults: 0.9 / 0.2 / 0.05); validated on creation."""

    good: float = DEFAULT_GOOD
    normal: float = DEFAULT_NORMAL
    bad: float = DEFAULT_BAD

    def __post_init__(self) -> None:
        check_reward_map(self.good, self.normal, self.bad)

    def of(self, label: Label | str) -> float:
        """The reward of one assessed label; ValueError for "unassessed" or an unknown label."""
        value = Label(label)
        if value == Label.UNASSESSED:
            raise ValueError("an unassessed dimension has no reward")
        return float(getattr(self, value.value))

    def expected(self, probs: LabelProbabilities) -> float:
        """Eq. 2 for one dimension: the expected reward under ``probs``."""
        return probs.good * self.good + probs.normal * self.normal + probs.bad * self.bad

    def as_dict(self) -> dict[str, float]:
        """{"good": .., "normal": .., "bad": ..}."""
        return {"good": self.good, "normal": self.normal, "bad": self.bad}


DEFAULT_REWARD_MAP = RewardMap()
"""The paper's map: good 0.9, normal 0.2, bad 0.05."""


def dimension_reward(verdict: DimensionVerdict, reward_map: RewardMap) -> float | None:
    """A judged dimension's expected reward; None for an unassessed one.

    Probabilities are used when the verdict has them; a label without them
    counts as certain.
    """
    if verdict.label == Label.UNASSESSED:
        return None
    if verdict.probabilities is not None:
        return reward_map.expected(verdict.probabilities)
    return reward_map.of(verdict.label)


def rewards_by_dimension(
    dimensions: Iterable[DimensionVerdict], reward_map: RewardMap
) -> dict[str, float]:
    """{dimension name: expected reward} over the judged dimensions."""
    out: dict[str, float] = {}
    for d in dimensions:
        value = dimension_reward(d, reward_map)
        if value is not None:
            out[d.name.value] = value
    return out


def mean_reward(per_dimension: Mapping[str, float]) -> float | None:
    """A video's reward from its per-dimension rewards: their mean; None when empty."""
    return sum(per_dimension.values()) / len(per_dimension) if per_dimension else None


def video_reward(dimensions: Iterable[DimensionVerdict], reward_map: RewardMap) -> float | None:
    """A video's reward (Eq. 2): mean expected reward over judged dimensions; None if none."""
    return mean_reward(rewards_by_dimension(dimensions, reward_map))


def labels_reward(labels: Mapping[str, Label | str], reward_map: RewardMap) -> float | None:
    """The reward of labels given without probabilities (human or offline ratings).

    ``labels`` maps dimension names to "good", "normal", "bad" or "unassessed";
    unassessed dimensions are left out. ValueError for any other label.
    """
    per_dimension = {
        name: reward_map.of(label)
        for name, label in labels.items()
        if Label(label) != Label.UNASSESSED
    }
    return mean_reward(per_dimension)
