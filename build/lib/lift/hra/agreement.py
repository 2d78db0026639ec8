"""Agreement between a critic and human ratings: accuracy and confusion per dimension.

The critic is any callable that judges (video, prompt) pairs, so the same code
scores a remote critic (gRPC/HTTP client), an in-process backend, or a fake
in tests. Each distinct (video, prompt) is judged once and compared on every
dimension humans rated it on. Dimensions the critic does not assess are
reported as such and left out of its average (the paper's Table-2 "avg" is the
mean of the per-dimension accuracies).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from lift.critique import ASSESSED_LABELS, DIMENSIONS, Critique, Dimension, Label
from lift.hra.records import HraRecord

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
        }


def agreement(critic: str, records: Sequence[HraRecord], judge: JudgeFn) -> AgreementReport:
    """Judge every distinct (video, prompt) once and compare with the human labels."""
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
    return report
