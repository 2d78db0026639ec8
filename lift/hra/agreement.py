"""Agreement between a critic and human ratings: accuracy and confusion per dimension.

The critic is any callable that judges (video, prompt) pairs, so the same code
scores a remote critic (gRPC/HTTP client), an in-process backend, or a fake
in tests. Each distinct (video, prompt) is judged once and compared on every
dimension humans rated it on. Dimensions the critic does not assess are
reported as such and left out of its average (the paper's Table-2 "avg" is the
mean of the per-dimension accuracies). Beside the labels, the report compares
the rewards (Eq. 2, :mod:`lift.reward`) of the human labels and of the critic's
verdicts on the dimensions humans rated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from lift.critique import ASSESSED_LABELS, DIMENSIONS, Critique, Dimension, Label
from lift.hra.records import HraRecord
from lift.reward import DEFAULT_REWARD_MAP, RewardMap, mean_reward, rewards_by_dimension

JudgeFn = Callable[[Sequence[tuple[str, str]]], Sequence[Critique | str]]
"""(video, prompt) pairs -> a critique or an error message per pair."""

PAPER_TABLE2: dict[str, tuple[float, float, float, float]] = {
    "LiFT-Critic-40B (paper)": (90.2, 94.9, 95.5, 93.6),
    "LiFT-Critic-13B (paper)": (85.6, 88.9, 88.5, 87.7),
    "GPT-4o (paper)": (70.6, 67.3, 72.0, 70.0),
}
"""Accuracy (%) on the LiFT-HRA test split: SC, MS, VF, avg (for reference only)."""


@dataclass
class DimensionAgreement:
    """Human label (rows) vs critic label (columns) for one dimension."""

    dimension: Dimension
    confusion: dict[Label, dict[Label, int]] = field(
        default_factory=lambda: {h: dict.fromkeys(Label, 0) for h in ASSESSED_LABELS}
    )

    @property
    def compared(self) -> int:
        """Ratings the critic gave an assessed label for."""
        return sum(row[c] for row in self.confusion.values() for c in ASSESSED_LABELS)

    @property
    def unassessed(self) -> int:
        """Ratings on which the critic said "unassessed"."""
        return sum(row[Label.UNASSESSED] for row in self.confusion.values())

    @property
    def accuracy(self) -> float | None:
        """Share of compared ratings where the labels agree; None when nothing compared."""
        n = self.compared
        return None if n == 0 else sum(self.confusion[lab][lab] for lab in ASSESSED_LABELS) / n


@dataclass
class AgreementReport:
    """One critic against one HRA file."""

    critic: str
    dimensions: dict[Dimension, DimensionAgreement]
    errors: list[tuple[HraRecord, str]]
    rewards: list[tuple[float, float]] = field(default_factory=list)
    """(human reward, critic reward) per judged video, over the dimensions humans rated."""

    def reward_summary(self) -> dict[str, float | int | None]:
        """Mean human and critic reward and their mean absolute difference."""
        n = len(self.rewards)
        if n == 0:
            return {"videos": 0, "human_mean": None, "critic_mean": None, "mean_abs_diff": None}
        return {
            "videos": n,
            "human_mean": sum(h for h, _ in self.rewards) / n,
            "critic_mean": sum(c for _, c in self.rewards) / n,
            "mean_abs_diff": sum(abs(h - c) for h, c in self.rewards) / n,
        }

    @property
    def average(self) -> float | None:
        """Mean accuracy over the dimensions the critic assessed."""
        accs = [a.accuracy for a in self.dimensions.values() if a.accuracy is not None]
        return sum(accs) / len(accs) if accs else None

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form."""
        return {
            "critic": self.critic,
            "average_accuracy": self.average,
            "dimensions": {
                d.value: {
                    "accuracy": a.accuracy,
                    "compared": a.compared,
                    "unassessed": a.unassessed,
                    "confusion": {
                        h.value: {c.value: n for c, n in row.items()}
                        for h, row in a.confusion.items()
                    },
                }
                for d, a in self.dimensions.items()
            },
            "errors": [{"line": r.line, "video": r.video, "error": e} for r, e in self.errors],
            "reward": self.reward_summary(),
        }


def _reward_pair(
    ratings: Sequence[HraRecord], critique: Critique, reward_map: RewardMap
) -> tuple[float, float] | None:
    """Human and critic reward of one video over the dimensions humans rated (None if unjudged).

    Several ratings of one dimension are averaged first, so each rated dimension
    weighs the same, as in Eq. 2.
    """
    by_dim: dict[str, list[float]] = {}
    for r in ratings:
        by_dim.setdefault(r.dimension.value, []).append(reward_map.of(r.label))
    rated = {d: sum(v) / len(v) for d, v in by_dim.items()}
    critic_dims = rewards_by_dimension(
        (d for d in critique.dimensions if d.name.value in rated), reward_map
    )
    human = mean_reward({d: v for d, v in rated.items() if d in critic_dims})
    machine = mean_reward(critic_dims)
    return None if human is None or machine is None else (human, machine)


def agreement(
    critic: str,
    records: Sequence[HraRecord],
    judge: JudgeFn,
    reward_map: RewardMap = DEFAULT_REWARD_MAP,
) -> AgreementReport:
    """Judge every distinct (video, prompt) once and compare with the human labels and rewards."""
    pairs: dict[tuple[str, str], list[HraRecord]] = {}
    for r in records:
        pairs.setdefault((r.video, r.prompt), []).append(r)
    keys = list(pairs)
    results = judge(keys)
    report = AgreementReport(critic, {d: DimensionAgreement(d) for d in DIMENSIONS}, [])
    for key, result in zip(keys, results, strict=True):
        for r in pairs[key]:
            if isinstance(result, str):
                report.errors.append((r, result))
                continue
            given = result.dimension(r.dimension).label
            report.dimensions[r.dimension].confusion[r.label][given] += 1
        if not isinstance(result, str):
            pair = _reward_pair(pairs[key], result, reward_map)
            if pair is not None:
                report.rewards.append(pair)
    return report
