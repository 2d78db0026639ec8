"""Turn raw measurements into time-stamped findings, one rule per defect.

Each rule compares a measurement with a threshold (see :class:`Thresholds`,
whose docstrings say how each is computed) and turns the runs of frames or
frame pairs past it into a :class:`Finding` with a span in seconds, a severity
in [0, 1] and a plain sentence. Rules that would fire on the side effects of
another defect (judder at the edges of a freeze, a "cut" that is really an
exposure jump, "blur" on frames that are blocky or blown out) are suppressed
there, so each defect is named once, by its cause.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lift.critique import Dimension
from lift.services.critic.backends.signal.measure import Measurements


@dataclass(frozen=True)
class Thresholds:
    """Where each signal starts to count as a defect. Grey levels are 0..255."""

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
    flicker_grey: float = 3.0
    """Flicker: |median over a 4x4 grid of the second temporal difference of cell means| in grey levels."""
    blur_ratio: float = 0.35
    """Blur: Laplacian variance below this share of the clip's median."""
    noise_sigma: float = 2.0
    """Noise: estimated sigma (grey levels, on the half-size frame) above this."""
    overexposed_share: float = 0.10
    """Overexposure: share of pixels at >= 250 above this."""
    underexposed_share: float = 0.25
    """Underexposure: share of pixels at <= 5 above this."""
    blockiness: float = 1.6
    """Blockiness: gradient across 8x8 block edges over gradient inside blocks above this."""


@dataclass(frozen=True)
class Finding:
    """One defect: which dimension it hurts, where, how badly, and a sentence."""

    dimension: Dimension
    tag: str
    start_s: float
    end_s: float
    severity: float
    reason: str


def _runs(mask: np.ndarray, max_gap: int = 0) -> list[tuple[int, int]]:
    """Runs of True as (first, last) indices, merging runs separated by <= max_gap Falses."""
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return []
    runs = [[int(idx[0]), int(idx[0])]]
    for i in idx[1:]:
        if i - runs[-1][1] <= max_gap + 1:
            runs[-1][1] = int(i)
        else:
            runs.append([int(i), int(i)])
    return [(a, b) for a, b in runs]


def _severity(ratio: float, duration_s: float, base: float = 0.3) -> float:
    """Severity from how far past its threshold a signal went and for how long."""
    s = base + 0.2 * math.log2(max(ratio, 1.0)) + 0.15 * min(duration_s, 2.0)
    return float(min(1.0, max(0.0, s)))


def _fmt(a: float, b: float) -> str:
    return f"{a:.2f}–{b:.2f} s"


class Detector:
    """Applies every rule to one video's measurements."""

    def __init__(self, m: Measurements, th: Thresholds) -> None:
        self.m, self.th = m, th
        self.n = m.times.size
        self.step = m.frame_step_s
        self.findings: list[Finding] = []
        self.med_diff = float(np.median(m.diff)) if m.diff.size else 0.0
        self.med_speed = float(np.median(m.speed)) if m.speed.size else 0.0
        fps = 1.0 / self.step if self.step > 0 else 8.0
        # Share of the frame diagonal the moving subject crosses per second.
        per_s = self.med_speed / m.diag_px * fps
        self.dynamic_degree = float(1.0 - math.exp(-per_s / 0.05))
        self.static = self.dynamic_degree < th.static_dynamic_degree
        self.excluded = np.zeros(max(self.n - 1, 0), bool)
        """Pairs explained by a cut, an exposure jump or a freeze edge: skipped by other rules."""

    # -- time helpers -------------------------------------------------------
    def _pair_span(self, a: int, b: int) -> tuple[float, float]:
        """Seconds covered by pairs a..b (frames a..b+1)."""
        return float(self.m.times[a]), float(self.m.times[b + 1])

    def _frame_span(self, a: int, b: int) -> tuple[float, float]:
        """Seconds covered by frames a..b."""
        return float(self.m.times[a]), float(self.m.times[b] + self.step)

    def _add(
        self, dim: Dimension, tag: str, span: tuple[float, float], sev: float, why: str
    ) -> None:
        self.findings.append(Finding(dim, tag, round(span[0], 3), round(span[1], 3), sev, why))

    # -- rules --------------------------------------------------------------
    def run(self) -> list[Finding]:
        """Apply all rules; return the findings in time order within each rule."""
        if self.n >= 2:
            self._static()
            self._exposure_jumps_and_cuts()
            self._frozen()
            self._judder()
            self._flicker()
        self._blockiness()
        self._exposure()
        self._blur()
        self._noise()
        return self.findings

    def _static(self) -> None:
        if self.static:
            span = (float(self.m.times[0]), float(self.m.times[-1] + self.step))
            self._add(
                Dimension.MOTION_SMOOTHNESS,
                "static_video",
                span,
                0.4,
                f"The video is nearly static (dynamic degree {self.dynamic_degree:.2f}): almost "
                "nothing moves, so its smoothness says little.",
            )

    def _exposure_jumps_and_cuts(self) -> None:
        m, th = self.m, self.th
        jump = (np.abs(np.diff(m.clipped_high)) > th.exposure_jump) | (
            np.abs(np.diff(m.clipped_low)) > th.exposure_jump
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
            span = self._pair_span(int(t), int(t))
            self._add(
                Dimension.MOTION_SMOOTHNESS,
                "abrupt_cut",
                span,
                0.7,
                f"Abrupt cut at {span[1]:.2f} s: the whole scene changes between two frames "
                f"(structural correlation {m.structure_corr[t]:.2f}).",
            )

    def _frozen(self) -> None:
        m, th = self.m, self.th
        if self.static:
            return
        frozen = (m.diff < th.frozen_diff_ratio * self.med_diff) & (
            m.speed < th.frozen_speed_ratio * self.med_speed + 0.02
        )
        frozen &= ~self.excluded
        for a, b in _runs(frozen):
            span = self._frame_span(a, b + 1)
            # The catch-up jump right after (and into) a freeze is its effect, not judder.
            self.excluded[max(0, a - 1) : b + 2] = True
            if b == a:
                self._add(
                    Dimension.MOTION_SMOOTHNESS,
                    "stutter",
                    span,
                    0.3,
                    f"The motion stutters at {span[0]:.2f} s: a frame repeats while the scene moves.",
                )
            else:
                dur = span[1] - span[0]
                self._add(
                    Dimension.MOTION_SMOOTHNESS,
                    "frozen_frames",
                    span,
                    min(1.0, 0.35 + 0.4 * dur),
                    f"Frames {_fmt(*span)} are frozen while the rest of the video moves "
                    f"({b - a + 2} identical frames).",
                )

    def _judder(self) -> None:
        m, th = self.m, self.th
        if self.static or m.cell_velocity.shape[0] < 2:
            return
        acc = np.abs(np.diff(m.cell_velocity, axis=0)).sum(axis=2).mean(axis=1)
        ratio = acc / (self.med_speed + 0.3)
        ok = ~(self.excluded[:-1] | self.excluded[1:])
        flagged = (ratio > th.judder_ratio) & ok
        for a, b in _runs(flagged, max_gap=1):
            span = self._pair_span(a, b + 1)
            peak = float(ratio[a : b + 1].max())
            count = int(flagged[a : b + 1].sum())
            sev = _severity(peak / th.judder_ratio, span[1] - span[0], base=0.3 + 0.05 * count)
            self._add(
                Dimension.MOTION_SMOOTHNESS,
                "judder",
                span,
                sev,
                f"Motion is jerky over {_fmt(*span)}: speed and direction jump from frame to "
                f"frame ({count} jolts, up to {peak:.1f}x the typical motion).",
            )

    def _flicker(self) -> None:
        m, th = self.m, self.th
        if self.n < 3:
            return
        second = m.cell_mean[2:] - 2 * m.cell_mean[1:-1] + m.cell_mean[:-2]
        swing = np.abs(np.median(second, axis=1))  # index t -> frame t+1
        ok = ~(self.excluded[:-1] | self.excluded[1:])
        flagged = (swing > th.flicker_grey) & ok
        for a, b in _runs(flagged, max_gap=1):
            count = int(flagged[a : b + 1].sum())
            span = self._frame_span(a, b + 2)
            peak = float(swing[a : b + 1].max())
            if count >= 3:
                self._add(
                    Dimension.VIDEO_FIDELITY,
                    "flicker",
                    span,
                    _severity(peak / th.flicker_grey, span[1] - span[0], base=0.35),
                    f"Brightness flickers over {_fmt(*span)} (frame-to-frame swings up to "
                    f"{peak:.0f} grey levels).",
                )
            else:
                self._add(
                    Dimension.VIDEO_FIDELITY,
                    "brightness_jump",
                    span,
                    _severity(peak / th.flicker_grey, 0.0, base=0.2),
                    f"Brightness jumps abruptly at {span[0] + self.step:.2f} s "
                    f"({peak:.0f} grey levels).",
                )

    def _frame_rule(
        self,
        values: np.ndarray,
        flagged: np.ndarray,
        tag: str,
        threshold: float,
        sentence: str,
        higher_is_worse: bool = True,
    ) -> np.ndarray:
        for a, b in _runs(flagged, max_gap=1):
            span = self._frame_span(a, b)
            seg = values[a : b + 1]
            peak = float(seg.max()) if higher_is_worse else float(seg.min())
            ratio = peak / threshold if higher_is_worse else threshold / max(peak, 1e-6)
            self._add(
                Dimension.VIDEO_FIDELITY,
                tag,
                span,
                _severity(ratio, span[1] - span[0]),
                sentence.format(span=_fmt(*span), peak=peak),
            )
        return flagged

    def _blockiness(self) -> None:
        th = self.th
        self.blocky = self._frame_rule(
            self.m.blockiness,
            self.m.blockiness > th.blockiness,
            "blockiness",
            th.blockiness,
            "Compression blocks are visible over {span} (8x8 block edges {peak:.1f}x stronger "
            "than the texture inside blocks).",
        )

    def _exposure(self) -> None:
        m, th = self.m, self.th
        self.over = self._frame_rule(
            m.clipped_high,
            m.clipped_high > th.overexposed_share,
            "overexposure",
            th.overexposed_share,
            "Highlights are blown out over {span}: up to {peak:.0%} of the frame is pure white.",
        )
        self._frame_rule(
            m.clipped_low,
            m.clipped_low > th.underexposed_share,
            "underexposure",
            th.underexposed_share,
            "Shadows are crushed over {span}: up to {peak:.0%} of the frame is pure black.",
        )

    def _blur(self) -> None:
        m, th = self.m, self.th
        ref = float(np.median(m.sharpness))
        if ref <= 1e-6:
            return
        rel = m.sharpness / ref
        # Detail lost to blocks or blown highlights is named by those rules.
        flagged = (rel < th.blur_ratio) & ~self.blocky & ~self.over
        self._frame_rule(
            rel,
            flagged,
            "blur",
            th.blur_ratio,
            "Frames {span} are blurred: sharpness drops to {peak:.0%} of the rest of the video.",
            higher_is_worse=False,
        )

    def _noise(self) -> None:
        th = self.th
        self._frame_rule(
            self.m.noise_sigma,
            self.m.noise_sigma > th.noise_sigma,
            "noise",
            th.noise_sigma,
            "Visible noise over {span} (estimated sigma {peak:.1f} grey levels at half size).",
        )
