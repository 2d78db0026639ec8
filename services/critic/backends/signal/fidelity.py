"""Video-fidelity rules: flicker, compression blocks, exposure, blur, noise.

Each rule compares a measurement (:mod:`.quality` per frame, :mod:`.measure`
over time) with a threshold (see :class:`FidelityThresholds`) and turns the runs
of frames past it into findings, and gives the clip's continuous evidence for
its defect (see :mod:`.detect`). Rules that would fire on the side effects of
another defect ("blur" on frames that are blocky or blown out) are suppressed
there, so each defect is named once, by its cause.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lift.critique import Dimension
from lift.services.critic.backends.signal.detect import Rules, fmt, runs, severity

FID = Dimension.VIDEO_FIDELITY


@dataclass(frozen=True)
class FidelityThresholds:
    """Where each picture signal starts to count as a defect. Grey levels are 0..255."""

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


@dataclass
class FidelityRules(Rules):
    """Applies every fidelity rule to one clip's measurements.

    ``excluded`` marks frame pairs the motion rules explained (cuts, exposure
    jumps, freeze edges): temporal rules skip them.
    """

    excluded: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    th: FidelityThresholds = field(default_factory=FidelityThresholds)

    def run(self) -> FidelityRules:
        """Apply all rules (findings and evidence land on ``self``)."""
        if self.excluded.size != max(self.n - 1, 0):
            self.excluded = np.zeros(max(self.n - 1, 0), bool)
        if self.n >= 3:
            self._flicker()
        self._blockiness()
        self._exposure()
        self._blur()
        self._noise()
        return self

    def _flicker(self) -> None:
        m, th = self.m, self.th
        second = m.cell_mean[2:] - 2 * m.cell_mean[1:-1] + m.cell_mean[:-2]
        swing = np.abs(np.median(second, axis=1))  # index t -> frame t+1
        ok = ~(self.excluded[:-1] | self.excluded[1:])
        flagged = (swing > th.flicker_grey) & ok
        for a, b in runs(flagged, max_gap=1):
            count = int(flagged[a : b + 1].sum())
            span = self.frame_span(a, b + 2)
            peak = float(swing[a : b + 1].max())
            if count >= 3:
                self.add(
                    FID,
                    "flicker",
                    span,
                    severity(peak / th.flicker_grey, span[1] - span[0], base=0.35),
                    f"Brightness flickers over {fmt(*span)} (frame-to-frame swings up to "
                    f"{peak:.0f} grey levels).",
                )
            else:
                self.add(
                    FID,
                    "brightness_jump",
                    span,
                    severity(peak / th.flicker_grey, 0.0, base=0.2),
                    f"Brightness jumps abruptly at {span[0] + self.step:.2f} s "
                    f"({peak:.0f} grey levels).",
                )
        self.evidence_of(FID, "flicker", float(np.max(swing[ok], initial=0.0)) / th.flicker_grey)

    def _frame_rule(
        self,
        values: np.ndarray,
        flagged: np.ndarray,
        tag: str,
        threshold: float,
        sentence: str,
        higher_is_worse: bool = True,
    ) -> np.ndarray:
        for a, b in runs(flagged, max_gap=1):
            span = self.frame_span(a, b)
            seg = values[a : b + 1]
            peak = float(seg.max()) if higher_is_worse else float(seg.min())
            ratio = peak / threshold if higher_is_worse else threshold / max(peak, 1e-6)
            self.add(
                FID,
                tag,
                span,
                severity(ratio, span[1] - span[0]),
                sentence.format(span=fmt(*span), peak=peak),
            )
        if values.size:
            worst = float(values.max()) if higher_is_worse else float(values.min())
            bad = worst / threshold if higher_is_worse else threshold / max(worst, 1e-6)
            self.evidence_of(FID, tag, bad)
        return flagged

    def _blockiness(self) -> None:
        q, th = self.m.quality, self.th
        self.blocky = self._frame_rule(
            q.blockiness,
            q.blockiness > th.blockiness,
            "blockiness",
            th.blockiness,
            "Compression blocks are visible over {span} (8x8 block edges {peak:.1f}x stronger "
            "than the texture inside blocks).",
        )

    def _exposure(self) -> None:
        q, th = self.m.quality, self.th
        self.over = self._frame_rule(
            q.clipped_high,
            q.clipped_high > th.overexposed_share,
            "overexposure",
            th.overexposed_share,
            "Highlights are blown out over {span}: up to {peak:.0%} of the frame is pure white.",
        )
        self._frame_rule(
            q.clipped_low,
            q.clipped_low > th.underexposed_share,
            "underexposure",
            th.underexposed_share,
            "Shadows are crushed over {span}: up to {peak:.0%} of the frame is pure black.",
        )

    def _blur(self) -> None:
        q, th = self.m.quality, self.th
        ref = float(np.median(q.sharpness))
        if ref <= 1e-6:
            return
        rel = q.sharpness / ref
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
        q, th = self.m.quality, self.th
        self._frame_rule(
            q.noise_sigma,
            q.noise_sigma > th.noise_sigma,
            "noise",
            th.noise_sigma,
            "Visible noise over {span} (estimated sigma {peak:.1f} grey levels at half size).",
        )
