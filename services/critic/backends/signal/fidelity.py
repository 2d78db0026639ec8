"""Video-fidelity rules: flicker, compression, exposure, blur, noise.

Each rule compares a measurement (:mod:`.quality` per frame, :mod:`.measure`
over time) with a threshold (see :class:`FidelityThresholds`), turns the runs
of frames past it into findings, and gives the clip's continuous evidence for
its defect (see :mod:`.detect`).

Fidelity is judged **absolutely**: a clip's picture against what sharp,
clean, well-exposed natural footage looks like, not only against the clip's own
median. Where a measure has a natural non-zero floor (the edge width of an
in-focus picture, the smear share of clean footage) that floor is read from the
natural-scene reference fitted by ``python -m tools.signal_quality.fit`` on
pristine photographs (``natural_scene.json`` next to this module), so the
evidence is 0 at pristine quality. The relative rule for blur (sharpness far
below the clip's own median) is kept for blur that comes and goes.

Evidence per rule: the per-frame measure becomes a ratio r (1 at the threshold);
the clip's ratio is the largest 3-frame running median (one odd frame does not
make a defect, a span does); the evidence is ``grow(r)``: r squared up to 1,
then ``1 + log2(r)`` (one more for every doubling, no saturation). Rules that
would fire on the side effects of another defect ("blur" on frames that are
blocky or blown out) do not report findings there, so each defect is named
once, by its cause.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from lift.critique import Dimension
from lift.services.critic.backends.signal.detect import Rules, fmt, runs, severity

FID = Dimension.VIDEO_FIDELITY
NATURAL_SCENE = Path(__file__).with_name("natural_scene.json")
"""Pristine reference of the absolute measures (written by tools/signal_quality/fit.py)."""


@dataclass(frozen=True)
class NaturalScene:
    """What the absolute measures read on pristine natural pictures (their zero points)."""

    edge_width: float
    """Median blur sigma (px) of the sharpest edges of pristine photographs."""
    smear: float
    """Median share of smeared blocks of pristine photographs."""
    noise_sigma: float
    """Median noise floor (grey levels) of pristine photographs: natural grain, not a defect."""
    noise_floor_by_side: tuple[tuple[float, float], ...] = ()
    """(long side px, median noise floor) of the same photographs shrunk to that side: a
    small picture packs texture into its flattest pixels, which reads as noise."""

    def noise_floor(self, side: np.ndarray) -> np.ndarray:
        """The pristine noise floor at these fine-scale long sides (px).

        Interpolated in log(side) over the fitted sides, made non-increasing with
        size (never below the full-scale floor) and held flat outside them.
        """
        if not self.noise_floor_by_side:
            return np.full(np.shape(side), self.noise_sigma)
        sides = np.array([a for a, _ in self.noise_floor_by_side], np.float64)
        floors = np.array([b for _, b in self.noise_floor_by_side], np.float64)
        order = np.argsort(sides)
        sides, floors = sides[order], floors[order]
        floors = np.maximum(np.maximum.accumulate(floors[::-1])[::-1], self.noise_sigma)
        logs = np.log(np.maximum(np.asarray(side, np.float64), 1.0))
        return np.interp(logs, np.log(sides), floors)


@cache
def natural_scene(path: Path = NATURAL_SCENE) -> NaturalScene:
    """The fitted pristine reference (loaded once)."""
    data = json.loads(path.read_text())
    ref = data["pristine"]
    return NaturalScene(
        edge_width=float(ref["edge_width"]),
        smear=float(ref["smear"]),
        noise_sigma=float(ref["noise_sigma"]),
        noise_floor_by_side=tuple(
            sorted((float(k), float(v)) for k, v in data.get("noise_floor_by_side", {}).items())
        ),
    )


def grow(ratio: np.ndarray | float, power: float = 2.0) -> np.ndarray:
    """Evidence from a ratio to threshold: r**power below 1, then 1 + log2(r) (strict, unbounded).

    Squared below the threshold (by default) so that the many small readings of
    a clean clip (each rule sees a little of its defect in any real picture)
    stay small and do not add up to a defect; log growth above it, one more
    per doubling (2 at twice the threshold, 3 at four times), the pace of the
    motion rules' evidence, so that a strong defect reaches "bad".
    """
    r = np.maximum(np.asarray(ratio, np.float64), 0.0)
    return np.where(r <= 1.0, r**power, 1.0 + np.log2(np.maximum(r, 1.0)))


def _smooth(x: np.ndarray) -> np.ndarray:
    """3-frame running median (ends kept): a defect must hold for more than one frame."""
    if x.size < 3:
        return x
    mid = np.median(np.stack([x[:-2], x[1:-1], x[2:]]), axis=0)
    return np.concatenate([[min(x[0], x[1])], mid, [min(x[-1], x[-2])]])


@dataclass(frozen=True)
class FidelityThresholds:
    """Where each picture signal starts to count as a defect. Grey levels are 0..255."""

    flicker_grey: float = 3.0
    """Flicker: |median over a 4x4 grid of the second temporal difference of cell means| in grey levels."""
    blur_ratio: float = 0.25
    """Blur within a clip: Laplacian variance below this share of the clip's median."""
    edge_width: float = 1.0
    """Blur: the sharpest edges are as wide as a Gaussian blur of this sigma (fine-scale px)."""
    noise_sigma: float = 1.0
    """Noise: estimated sigma on the flattest pixels (grey levels, fine scale) above this."""
    smear: float = 0.3
    """Compression: share of textured 8x8 blocks with their fine detail wiped out."""
    grain_sigma: float = 0.5
    """Compression: a noise floor below this (grey levels) counts as grain wiped out."""
    grain_weight: float = 0.25
    """Compression: the share of the threshold a fully wiped noise floor adds to the smear."""
    highlight: float = 0.05
    """Overexposure: soft share of blown-out white (levels 239..250 count 0..1, above 250 fully) above this."""
    black_level: float = 24.0
    """Overexposure: a black point (1st percentile) above this is lifted (washed-out picture)..."""
    lifted_span: float = 48.0
    """... and lifting it by this much more adds the whole threshold."""
    white_level: float = 200.0
    """Underexposure: the 99th grey-level percentile is measured in stops below this level."""
    underexposed_stops: float = 0.7
    """Underexposure: stops below ``white_level`` (raised by crushed shadows) above this."""
    crushed_share: float = 0.25
    """Underexposure: a share of pixels at <= 5 of this doubles the darkness measure."""
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
    scene: NaturalScene = field(default_factory=natural_scene)

    def run(self) -> FidelityRules:
        """Apply all rules (findings and evidence land on ``self``)."""
        if self.excluded.size != max(self.n - 1, 0):
            self.excluded = np.zeros(max(self.n - 1, 0), bool)
        if self.n >= 3:
            self._flicker()
        self._blockiness()
        self._exposure()
        self._compression()
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
        peak = float(np.max(swing[ok], initial=0.0)) / th.flicker_grey
        self.evidence_of(FID, "flicker", float(grow(peak)))

    def _ratio_rule(
        self,
        ratio: np.ndarray,
        tag: str,
        sentence: str,
        values: np.ndarray,
        allowed: np.ndarray | None = None,
        lowest: bool = False,
        power: float = 2.0,
    ) -> np.ndarray:
        """Findings where the smoothed per-frame ``ratio`` (1 at threshold) passes 1; evidence.

        ``values`` is what the sentence quotes (its peak, or its lowest value
        when ``lowest``); ``allowed`` masks frames where another rule names the
        cause; ``power`` shapes the evidence below the threshold (see
        :func:`grow`). Returns the flagged frames.
        """
        r = _smooth(np.maximum(ratio, 0.0))
        flagged = r >= 1.0
        if allowed is not None:
            flagged &= allowed
        for a, b in runs(flagged, max_gap=1):
            span = self.frame_span(a, b)
            seg = values[a : b + 1]
            peak = float(seg.min()) if lowest else float(seg.max())
            self.add(
                FID,
                tag,
                span,
                severity(float(r[a : b + 1].max()), span[1] - span[0]),
                sentence.format(span=fmt(*span), peak=peak),
            )
        self.evidence_of(FID, tag, float(grow(r.max(), power)) if r.size else 0.0)
        return flagged

    def _blockiness(self) -> None:
        q, th = self.m.quality, self.th
        self.blocky = self._ratio_rule(
            (q.blockiness - 1.0) / (th.blockiness - 1.0),
            "blockiness",
            "Compression blocks are visible over {span} (8x8 block edges {peak:.1f}x stronger "
            "than the texture inside blocks).",
            q.blockiness,
        )

    def _exposure(self) -> None:
        q, th = self.m.quality, self.th
        # Overexposed: large blown-out areas, or the whole histogram pushed up
        # (its black point lifted far from black: a washed-out picture).
        lifted = np.maximum(q.black_point - th.black_level, 0.0) / th.lifted_span
        self.over = self._ratio_rule(
            q.highlight / th.highlight + lifted,
            "overexposure",
            "Highlights are blown out over {span}: up to {peak:.0%} of the frame is pure white.",
            q.clipped_high,
        )
        # Underexposure is a dim picture: its white point far below white, made worse
        # by crushed shadows. A dark subject in a normally exposed frame (bright
        # parts still near white) is not underexposed, however much of it is black.
        stops = np.log2(th.white_level / np.maximum(q.white_point, 1.0))
        dark = np.maximum(stops, 0.0) * (1.0 + q.clipped_low / th.crushed_share)
        self._ratio_rule(
            dark / th.underexposed_stops,
            "underexposure",
            "The picture is underexposed over {span}: its brightest parts reach only grey "
            "level {peak:.0f} of 255.",
            q.white_point,
            lowest=True,
        )

    def _compression(self) -> None:
        # Smear (texture wiped flat) plus grain loss: real footage has a noise
        # floor (sensor grain, film grain, dither) that a codec's quantiser is the
        # first to remove. Grain loss alone stays below the threshold (a clean,
        # grain-free render is not a defect), it only adds to the smear.
        q, th, floor = self.m.quality, self.th, self.scene.smear
        grain_loss = np.clip(1.0 - q.noise_sigma / th.grain_sigma, 0.0, 1.0)
        self.smeared = self._ratio_rule(
            (q.smear - floor) / (th.smear - floor) + th.grain_weight * grain_loss,
            "compression",
            "Compression has smeared fine detail over {span}: up to {peak:.0%} of the textured "
            "areas are wiped flat.",
            q.smear,
            allowed=~self.over,
            # Linear below the threshold: any compression costs some quality, and
            # it must outweigh the grain and motion-blur readings it removes, so
            # that a CRF sweep lowers the score at every step.
            power=1.0,
        )

    def _blur(self) -> None:
        q, th, floor = self.m.quality, self.th, self.scene.edge_width
        absolute = (q.edge_width - floor) / (th.edge_width - floor)
        ref = float(np.median(q.sharpness))
        relative = (
            th.blur_ratio / np.maximum(q.sharpness / ref, 1e-6)
            if ref > 1e-6
            else np.zeros_like(absolute)
        )
        # The relative rule squares its ratio: a real clip's own motion blur dips
        # well below its median sharpness, which is no defect until it passes the
        # threshold. Detail lost to blocks or blown highlights is named by those rules.
        self._ratio_rule(
            np.maximum(absolute, relative**2),
            "blur",
            "Frames {span} are blurred: their sharpest edges are {peak:.1f} px wide (Gaussian "
            "sigma).",
            q.edge_width,
            allowed=~self.blocky & ~self.over,
        )

    def _noise(self) -> None:
        # Noise up to the natural grain of pristine pictures is not a defect. In a
        # small picture texture reaches the flattest pixels: the floor there is that
        # of the pristine photographs shrunk to the same size, and the threshold
        # keeps its ratio to the floor.
        q, th, scene = self.m.quality, self.th, self.scene
        floor = scene.noise_floor(q.fine_side)
        threshold = floor * (th.noise_sigma / scene.noise_sigma)
        self._ratio_rule(
            (q.noise_sigma - floor) / (threshold - floor),
            "noise",
            "Visible noise over {span} (estimated sigma {peak:.1f} grey levels).",
            q.noise_sigma,
        )
