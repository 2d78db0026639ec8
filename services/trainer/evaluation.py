"""Held-out evaluation: the same prompts and seeds scored before and after a run."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from lift.critique import Critique, Label
from lift.reward import RewardMap, mean_reward, rewards_by_dimension
from lift.services.trainer.stats import mean_ci95


def reward_of(c: Critique, reward_map: RewardMap) -> tuple[float, dict[str, float], bool]:
    """(reward, reward per judged dimension, good on every judged dimension) of a critique.

    The reward is Eq. 2 (:mod:`lift.reward`) under the run's ``reward_map``;
    ValueError when the critic judged no dimension (a training step needs a number).
    """
    per_dim = rewards_by_dimension(c.dimensions, reward_map)
    reward = mean_reward(per_dim)
    if reward is None:
        raise ValueError("the critic judged no dimension of this video")
    all_good = all(d.label == Label.GOOD for d in c.dimensions if d.label != Label.UNASSESSED)
    return reward, per_dim, all_good


@dataclass(frozen=True)
class EvalResult:
    """Rewards of the held-out set under one adapter version."""

    version: str
    rewards: list[float]
    dynamic_degree: float | None
    real_loss: float | None

    @property
    def mean(self) -> float:
        """Mean reward."""
        return mean_ci95(self.rewards)[0]

    @property
    def ci95(self) -> float:
        """Half-width of the mean's 95 % confidence interval."""
        return mean_ci95(self.rewards)[1]

    def to_json(self) -> dict[str, Any]:
        """Stored with the run and its checkpoints."""
        return {
            "version": self.version,
            "rewards": self.rewards,
            "dynamic_degree": self.dynamic_degree,
            "real_loss": self.real_loss,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> EvalResult:
        """Inverse of :meth:`to_json`."""
        return cls(d["version"], list(d["rewards"]), d.get("dynamic_degree"), d.get("real_loss"))


def compare(before: EvalResult, after: EvalResult) -> dict[str, Any]:
    """The run's headline: rewards before and after, and the paired gain's 95 % CI.

    Items are paired (same prompt and seed), so the interval is that of the mean
    per-item difference: tighter than two independent intervals, and the honest
    test of "the run raised the reward".
    """
    diffs = [a - b for a, b in zip(after.rewards, before.rewards, strict=True)]
    gain, ci = mean_ci95(diffs)
    _, ci_b = mean_ci95(before.rewards)
    _, ci_a = mean_ci95(after.rewards)
    return {
        "reward_before": before.mean,
        "reward_after": after.mean,
        "gain": gain,
        "ci95": _finite(ci),
        "ci95_before": _finite(ci_b),
        "ci95_after": _finite(ci_a),
        "significant": bool(gain - ci > 0),
        "n": len(diffs),
        "guards": {
            "dynamic_degree": {"before": before.dynamic_degree, "after": after.dynamic_degree},
            "real_loss": {"before": before.real_loss, "after": after.real_loss},
        },
    }


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None
