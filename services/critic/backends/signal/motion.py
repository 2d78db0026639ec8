"""Motion-smoothness rules: static video, cuts, frozen frames, stutter, judder.

Each rule compares a measurement with a threshold (see :class:`MotionThresholds`)
and turns the runs of frame pairs past it into findings, and gives the clip's
continuous evidence for its defect (see :mod:`.detect`). Pairs explained by a
cut, an exposure jump or the edges of a freeze are marked in ``excluded`` so
that no other rule (judder here, flicker in :mod:`.fidelity`) names them again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from lift.critique import Dimension
from lift.services.critic.backends.signal.detect import Rules, fmt, runs, severity

MOT = Dimension.MOTION_SMOOTHNESS


@dataclass(frozen=True)
class MotionThresholds:
    """Where each motion signal starts to count as a defect. Grey levels are 0..255."""

    static_dynamic_degree: float = 0.05
    """Below this dynamic degree the clip is "static" (and freezes cannot be judged)."""
    frozen_diff_ratio: float = 0.25
    """A pair is frozen when its mean grey difference is below this share of the clip's median..."""
    frozen_speed_ratio: float = 0.15
    """...and its subject speed below this share of the clip's median speed."""
    cut_corr: float = 0.8
    """A cut: structural correlation of consecutive coarse frames below this..."""
    cut_hist: float = 0.3
    """...and luminance-histogram L1 distance above this..."""
    cut_diff_factor: float = 3.0
    """...and grey difference above this many times the clip's median (+5 grey levels)."""
    exposure_jump: float = 0.1
    """A change of the clipped share of pixels above this between two frames is an exposure jump, not a cut."""
    judder_ratio: float = 0.5
    """Judder: mean change of grid-cell flow between consecutive pairs, over (median speed + 0.3 px)."""


@dataclass
class MotionRules(Rules):
    """Applies every motion rule to one clip's measurements."""

    th: MotionThresholds = field(default_factory=MotionThresholds)

    def __post_init__(self) -> None:
        m = self.m
        self.med_diff = float(np.median(m.diff)) if m.diff.size else 0.0
        self.med_speed = float(np.median(m.speed)) if m.speed.size else 0.0
        fps = 1.0 / self.step if self.step > 0 else 8.0
        # Share of the frame diagonal the moving subject crosses per second.
        per_s = self.med_speed / m.diag_px * fps
        self.dynamic_degree = float(1.0 - math.exp(-per_s / 0.05))
        self.static = self.dynamic_degree < self.th.static_dynamic_degree
        self.excluded = np.zeros(max(self.n - 1, 0), bool)
        """Pairs explained by a cut, an exposure jump or a freeze edge: skipped by other rules."""

    def run(self) -> MotionRules:
        """Apply all rules (findings and evidence land on ``self``)."""
        if self.n >= 2:
            self._static()
            self._exposure_jumps_and_cuts()
            self._frozen()
            self._judder()
        return self

    def _static(self) -> None:
        if self.static:
            span = (float(self.m.times[0]), float(self.m.times[-1] + self.step))
            self.add(
                MOT,
                "static_video",
                span,
                0.4,
                f"The video is nearly static (dynamic degree {self.dynamic_degree:.2f}): almost "
                "nothing moves, so its smoothness says little.",
            )
        self.evidence_of(
            MOT, "static_video", self.th.static_dynamic_degree / max(self.dynamic_degree, 1e-3)
        )

    def _exposure_jumps_and_cuts(self) -> None:
        m, th = self.m, self.th
        q = m.quality
        jump = (np.abs(np.diff(q.clipped_high)) > th.exposure_jump) | (
            np.abs(np.diff(q.clipped_low)) > th.exposure_jump
        )
        self.excluded |= jump
        cut = (
            (m.structure_corr < th.cut_corr)
            & (m.hist_dist > th.cut_hist)
            & (m.diff > th.cut_diff_factor * self.med_diff + 5.0)
            & ~jump
        )
        self.excluded |= cut
        for t in np.flatnonzero(cut):
            span = self.pair_span(int(t), int(t))
            self.add(
                MOT,
                "abrupt_cut",
                span,
                0.7,
                f"Abrupt cut at {span[1]:.2f} s: the whole scene changes between two frames "
                f"(structural correlation {m.structure_corr[t]:.2f}).",
            )
        self.evidence_of(MOT, "abrupt_cut", 1.0 * int(cut.sum()))

    def _frozen(self) -> None:
        m, th = self.m, self.th
        if self.static:
            return
        frozen = (m.diff < th.frozen_diff_ratio * self.med_diff) & (
            m.speed < th.frozen_speed_ratio * self.med_speed + 0.02
        )
        frozen &= ~self.excluded
        total = 0.0
        for a, b in runs(frozen):
            span = self.frame_span(a, b + 1)
            # The catch-up jump right after (and into) a freeze is its effect, not judder.
            self.excluded[max(0, a - 1) : b + 2] = True
            if b == a:
                total += 1.0
                self.add(
                    MOT,
                    "stutter",
                    span,
                    0.3,
                    f"The motion stutters at {span[0]:.2f} s: a frame repeats while the scene moves.",
                )
            else:
                dur = span[1] - span[0]
                total += 1.0 + dur
                self.add(
                    MOT,
                    "frozen_frames",
                    span,
                    min(1.0, 0.35 + 0.4 * dur),
                    f"Frames {fmt(*span)} are frozen while the rest of the video moves "
                    f"({b - a + 2} identical frames).",
                )
        self.evidence_of(MOT, "frozen_frames", total)

    def _judder(self) -> None:
        m, th = self.m, self.th
        if self.static or m.cell_velocity.shape[0] < 2:
            return
        acc = np.abs(np.diff(m.cell_velocity, axis=0)).sum(axis=2).mean(axis=1)
        ratio = acc / (self.med_speed + 0.3)
        ok = ~(self.excluded[:-1] | self.excluded[1:])
        flagged = (ratio > th.judder_ratio) & ok
        for a, b in runs(flagged, max_gap=1):
            span = self.pair_span(a, b + 1)
            peak = float(ratio[a : b + 1].max())
            count = int(flagged[a : b + 1].sum())
            sev = severity(peak / th.judder_ratio, span[1] - span[0], base=0.3 + 0.05 * count)
            self.add(
                MOT,
                "judder",
                span,
                sev,
                f"Motion is jerky over {fmt(*span)}: speed and direction jump from frame to "
                f"frame ({count} jolts, up to {peak:.1f}x the typical motion).",
            )
        self.evidence_of(MOT, "judder", float(np.max(ratio[ok], initial=0.0)) / th.judder_ratio)
