"""What every rule module shares: findings, continuous evidence, runs and spans.

The signal critic's judgement is split by dimension: :mod:`.motion` holds the
rules for motion smoothness (freezes, stutter, judder, cuts, static video) and
:mod:`.fidelity` those for video fidelity (blur, noise, compression, exposure,
flicker, absolute picture quality). Each rule gives two things:

* **evidence**: a continuous *badness* ``b >= 0`` of one defect over the whole
  clip: 0 when the clip shows none of it, exactly 1 at the threshold where the
  defect is reported, growing strictly with the defect's strength beyond. The
  backend's ordinal model turns a dimension's evidence into label
  probabilities and a score, so the score moves with quality even when no
  finding is reported (two "good" clips of different quality score
  differently) and keeps falling as a defect grows;
* **findings**: the time spans where the defect is past its threshold, each
  with a severity in [0, 1] and a plain sentence (the reasons a user reads).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from lift.critique import Dimension
from lift.services.critic.backends.signal.measure import Measurements


@dataclass(frozen=True)
class Finding:
    """One defect: which dimension it hurts, where, how badly, and a sentence."""

    dimension: Dimension
    tag: str
    start_s: float
    end_s: float
    severity: float
    reason: str


@dataclass(frozen=True)
class Evidence:
    """How much of one defect a clip shows: 0 none, 1 at its reporting threshold."""

    dimension: Dimension
    tag: str
    badness: float


def runs(mask: np.ndarray, max_gap: int = 0) -> list[tuple[int, int]]:
    """Runs of True as (first, last) indices, merging runs separated by <= max_gap Falses."""
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return []
    out = [[int(idx[0]), int(idx[0])]]
    for i in idx[1:]:
        if i - out[-1][1] <= max_gap + 1:
            out[-1][1] = int(i)
        else:
            out.append([int(i), int(i)])
    return [(a, b) for a, b in out]


def severity(ratio: float, duration_s: float, base: float = 0.3) -> float:
    """Severity from how far past its threshold a signal went and for how long."""
    s = base + 0.2 * math.log2(max(ratio, 1.0)) + 0.15 * min(duration_s, 2.0)
    return float(min(1.0, max(0.0, s)))


def fmt(a: float, b: float) -> str:
    """A time span as a user reads it."""
    return f"{a:.2f}–{b:.2f} s"


@dataclass
class Rules:
    """Base of a dimension's rule set: the measurements, spans and what was found."""

    m: Measurements
    findings: list[Finding] = field(default_factory=list, init=False)
    evidence: list[Evidence] = field(default_factory=list, init=False)

    @property
    def n(self) -> int:
        return int(self.m.times.size)

    @property
    def step(self) -> float:
        return self.m.frame_step_s

    def pair_span(self, a: int, b: int) -> tuple[float, float]:
        """Seconds covered by pairs a..b (frames a..b+1)."""
        return float(self.m.times[a]), float(self.m.times[b + 1])

    def frame_span(self, a: int, b: int) -> tuple[float, float]:
        """Seconds covered by frames a..b."""
        return float(self.m.times[a]), float(self.m.times[b] + self.step)

    def add(
        self, dim: Dimension, tag: str, span: tuple[float, float], sev: float, why: str
    ) -> None:
        self.findings.append(Finding(dim, tag, round(span[0], 3), round(span[1], 3), sev, why))

    def evidence_of(self, dim: Dimension, tag: str, badness: float) -> None:
        """Record the clip-level badness of ``tag`` (summed if the tag is given twice)."""
        b = float(badness)
        if not math.isfinite(b) or b < 0:
            b = 0.0
        # Rounded: OpenCV's threaded reductions can differ in the last bits between
        # processes; the same video must give the same score, bit for bit.
        self.evidence.append(Evidence(dim, tag, round(b, 9)))
