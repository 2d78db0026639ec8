"""Per-frame picture-quality measurements (no judgement yet): what :mod:`.fidelity` judges.

Called once per analysed frame from :func:`.measure.measure` (in its thread
pool) with the frame's grey levels at three sizes. Absolute measures (blur,
noise, compression smear) must not depend on the frame's resolution more than
a viewer's judgement does, so they are read at the ``fine`` scale: the frame
halved until its long side is <= ``FINE_MAX_SIDE`` (1280 px; 720p and smaller
are read at full resolution, where a one-pixel blur or grain is still there to
see, 1080p and 4K at 960 px), centre-cropped to at most ``FINE_MAX_PIXELS``
(320 Ki px) to bound the work per frame.

* ``fine``: blur as the width of the sharpest edges (Marziliano-style, read
  as the steepest step over the local contrast), noise (Immerkaer's
  estimator on the flattest pixels, Tai & Yang's edge-excluded variant) and
  compression smear (share of textured 8x8 blocks whose fine detail is
  wiped out);
* ``gray`` (full resolution, so the grid is the codec's): blockiness
  (gradient across 8x8 block edges versus inside blocks);
* ``mid`` (halved until the long side is <= 400 px): sharpness (variance of
  the Laplacian), for blur that comes and goes within a clip;
* ``small`` (mid halved until <= 200 px): the luminance distribution
  (percentiles, clipped and near-white shares) for exposure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import cv2
import numpy as np

FINE_MAX_SIDE = 1280
"""Long side (px) above which the absolute measures read a halved frame."""
FINE_MAX_PIXELS = 320 * 1024
"""Most pixels the absolute measures read per frame (a centre crop beyond)."""
EDGE_CONTRAST = 40
"""Local contrast (grey levels, 7x7 max - min) a pixel needs to count as on an edge."""
EDGE_QUANTILE = 0.995
"""Which of the edge pixels' steepness ratios stands for the sharpest edges."""
FLAT_QUANTILE = 0.05
"""Share of the flattest pixels (Sobel magnitude) the noise is read on."""
BLOCK = 8
SMEAR_TEXTURE = 3.0
"""A block is textured when its mean |Immerkaer| response on the half-size frame is >= this."""
SMEAR_DETAIL = 2.0
"""A textured block is smeared when its mean |Immerkaer| response at full size is below this."""

_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
_NOISE_SCALE = float(np.sqrt(np.pi / 2) / 6)
_EDGE_KERNEL = np.ones((7, 7), np.uint8)
_SQRT_2PI = math.sqrt(2.0 * math.pi)


@dataclass(frozen=True)
class FrameQuality:
    """One frame's picture measurements."""

    sharpness: float
    """Variance of the Laplacian on the mid-size frame (relative blur within a clip)."""
    edge_width: float
    """Blur of the sharpest edges as a Gaussian sigma in fine-scale px (~0.5 sharp)."""
    noise_sigma: float
    """Estimated noise standard deviation on the fine-scale frame (grey levels)."""
    smear: float
    """Share of textured 8x8 blocks with no fine detail left (0..1): compression smear."""
    clipped_high: float
    """Fraction of pixels at >= 250 (small frame)."""
    clipped_low: float
    """Fraction of pixels at <= 5 (small frame)."""
    highlight: float
    """Mean of clip((v - 239) / 11, 0, 1): a soft share of blown-out white (small frame)."""
    white_point: float
    """99th percentile of grey levels (small frame)."""
    black_point: float
    """1st percentile of grey levels (small frame)."""
    blockiness: float
    """Gradient across 8x8 block edges / gradient inside blocks (1 = none)."""
    fine_side: float
    """Long side (px) of the fine-scale frame the absolute measures read."""


@dataclass(frozen=True)
class Quality:
    """The per-frame measurements of a clip as (N,) arrays, one field per FrameQuality field."""

    sharpness: np.ndarray
    edge_width: np.ndarray
    noise_sigma: np.ndarray
    smear: np.ndarray
    clipped_high: np.ndarray
    clipped_low: np.ndarray
    highlight: np.ndarray
    white_point: np.ndarray
    black_point: np.ndarray
    blockiness: np.ndarray
    fine_side: np.ndarray

    @classmethod
    def stack(cls, frames: list[FrameQuality]) -> Quality:
        return cls(
            **{
                f.name: np.array([getattr(q, f.name) for q in frames], np.float64)
                for f in fields(FrameQuality)
            }
        )


def hist_quantile(hist: np.ndarray, q: float) -> float:
    """The ``q`` quantile of a 256-bin histogram, linearly interpolated inside its bin.

    Interpolating keeps the measure continuous in the picture (a gain sweep moves
    it a little every step, not by whole grey levels).
    """
    cum = np.cumsum(hist, dtype=np.float64)
    total = cum[-1]
    if total <= 0:
        return 0.0
    target = q * total
    i = int(np.searchsorted(cum, target))
    i = min(i, hist.size - 1)
    below = cum[i - 1] if i else 0.0
    inside = float(hist[i])
    return float(i + ((target - below) / inside if inside > 0 else 0.0))


def _hist(img: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    return cv2.calcHist([img], [0], mask, [256], [0, 256]).ravel()


def fine_scale_side(shape: tuple[int, ...]) -> int:
    """Long side (px) of the whole picture at the fine scale (before the centre crop)."""
    side = max(shape[:2])
    while side > FINE_MAX_SIDE:
        side = (side + 1) // 2 if side % 2 else side // 2
    return side


def fine_frame(gray: np.ndarray) -> np.ndarray:
    """``gray`` halved (area average) until its long side is <= FINE_MAX_SIDE, then its
    centre cropped to at most ``FINE_MAX_PIXELS`` (same aspect ratio).

    The crop bounds the work per frame (the absolute measures are the costliest
    part of a critique); the centre is where the picture's subject usually is,
    and a defect of the whole picture shows there as well as anywhere.
    """
    while max(gray.shape) > FINE_MAX_SIDE:
        gray = cv2.resize(gray, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    h, w = gray.shape
    if h * w > FINE_MAX_PIXELS:
        k = math.sqrt(FINE_MAX_PIXELS / (h * w))
        ch, cw = int(h * k), int(w * k)
        y, x = (h - ch) // 2 // BLOCK * BLOCK, (w - cw) // 2 // BLOCK * BLOCK  # codec grid kept
        gray = gray[y : y + ch, x : x + cw]
    return gray


def _blockiness(gray: np.ndarray) -> float:
    """Mean |step| across 8-px block edges over mean |step| mid-block, both axes."""
    h, w = gray.shape
    if w < 24 or h < 24:
        return 1.0
    # Per-column (per-row) mean absolute step, then compare the steps that cross
    # a block edge (7|8) with the steps in the middle of blocks (3|4).
    cols = cv2.reduce(cv2.absdiff(gray[:, 1:], gray[:, :-1]), 0, cv2.REDUCE_AVG, dtype=cv2.CV_32F)
    rows = cv2.reduce(cv2.absdiff(gray[1:], gray[:-1]), 1, cv2.REDUCE_AVG, dtype=cv2.CV_32F)
    cols, rows = cols.ravel(), rows.ravel()
    nw, nh = (w - 1) // 8, (h - 1) // 8
    edge = cols[7 : 8 * nw : 8].mean() + rows[7 : 8 * nh : 8].mean()
    inner = cols[3 : 8 * nw : 8].mean() + rows[3 : 8 * nh : 8].mean()
    return float((edge + 1.0) / (inner + 1.0))


def slope(fine: np.ndarray) -> np.ndarray:
    """Steepest one-pixel step at each pixel (max of |dx|, |dy|), (H-1, W-1) uint8."""
    gx = cv2.absdiff(fine[:-1, 1:], fine[:-1, :-1])
    gy = cv2.absdiff(fine[1:, :-1], fine[:-1, :-1])
    return cv2.max(gx, gy)


def edge_width(fine: np.ndarray, steps: np.ndarray) -> float:
    """Blur sigma (px) of the frame's sharpest edges; 0 when the frame has no edge.

    A step of contrast C blurred by a Gaussian of sigma s has a steepest slope of
    C / (s sqrt(2 pi)); the local contrast C is read as the 7x7 max - min. The
    ratio slope / C over edge pixels, at a high quantile (the sharpest edges the
    frame has, whatever else is in it), gives s = 1 / (sqrt(2 pi) ratio). This
    reads the optics and processing, not the amount of texture, so it is
    comparable across contents; an in-focus edge gives ~0.5-0.9.
    """
    h, w = fine.shape
    if h < 16 or w < 16:
        return 0.0
    contrast = cv2.subtract(cv2.dilate(fine, _EDGE_KERNEL), cv2.erode(fine, _EDGE_KERNEL))[:-1, :-1]
    mask = (contrast >= EDGE_CONTRAST).view(np.uint8)
    if cv2.countNonZero(mask) < 64:
        return 0.0
    ratio = cv2.divide(steps, contrast, scale=255.0)  # uint8: 255 * slope / contrast
    steep = hist_quantile(_hist(ratio, mask), EDGE_QUANTILE) / 255.0
    return 1.0 / (_SQRT_2PI * max(steep, 1e-3))


def curvature(fine: np.ndarray) -> np.ndarray:
    """|Immerkaer| response (the second difference that cancels planes and ramps), uint8."""
    return cv2.convertScaleAbs(cv2.filter2D(fine, cv2.CV_16S, _IMMERKAER))


def noise_sigma(detail: np.ndarray, steps: np.ndarray) -> float:
    """Noise sigma (grey levels) on the flattest ``FLAT_QUANTILE`` of the pixels.

    Immerkaer's operator cancels smooth shading; restricting it to the pixels
    with the smallest steps (Tai & Yang 2008 exclude edges the same way) keeps
    texture and edges out of the estimate, so textured real footage does not
    read as noisy.
    """
    thr = hist_quantile(_hist(steps), FLAT_QUANTILE)
    mask = (steps <= thr).view(np.uint8)
    if cv2.countNonZero(mask) == 0:
        return 0.0
    return _NOISE_SCALE * float(cv2.mean(detail[1:, 1:], mask)[0])


def smear(fine: np.ndarray, detail: np.ndarray) -> float:
    """Share of textured 8x8 blocks whose finest detail is gone (0..1).

    What a modern codec does at low bitrate: its quantiser drops the fine
    texture of a block and its deblocking filter hides the block edges, leaving
    the coarse texture with no grain or fine detail (smearing), while strong
    edges survive. A block counts as textured when the half-size frame has
    curvature there (so flat areas and plain shading ramps, which have none,
    are not counted), and as smeared when the full-size curvature is nearly
    nil. Real footage keeps grain and fine texture wherever it has texture.
    """
    h, w = fine.shape
    bh, bw = h // BLOCK, w // BLOCK
    if bh < 2 or bw < 2:
        return 0.0
    grid = (bw, bh)
    crop = fine[: bh * BLOCK, : bw * BLOCK]
    half = cv2.resize(crop, (bw * BLOCK // 2, bh * BLOCK // 2), interpolation=cv2.INTER_AREA)
    coarse = cv2.resize(curvature(half).astype(np.float32), grid, interpolation=cv2.INTER_AREA)
    finest = cv2.resize(
        detail[: bh * BLOCK, : bw * BLOCK].astype(np.float32), grid, interpolation=cv2.INTER_AREA
    )
    textured = coarse >= SMEAR_TEXTURE
    n = int(np.count_nonzero(textured))
    if n < 16:
        return 0.0
    return float(np.count_nonzero(textured & (finest < SMEAR_DETAIL))) / n


def _sharpness(mid: np.ndarray) -> float:
    _, std = cv2.meanStdDev(cv2.Laplacian(mid, cv2.CV_16S))
    return float(std[0, 0]) ** 2


def frame_quality(gray: np.ndarray, mid: np.ndarray, small: np.ndarray) -> FrameQuality:
    """Measure one frame given as uint8 grey levels at full, mid and small size."""
    fine = fine_frame(gray)
    detail = curvature(fine)
    steps = slope(fine)
    hist = _hist(small)
    levels = np.arange(256, dtype=np.float64)
    soft_white = np.clip((levels - 239.0) / 11.0, 0.0, 1.0)
    n = float(small.size)
    return FrameQuality(
        sharpness=_sharpness(mid),
        edge_width=edge_width(fine, steps),
        noise_sigma=noise_sigma(detail, steps),
        smear=smear(fine, detail),
        clipped_high=float(hist[250:].sum()) / n,
        clipped_low=float(hist[:6].sum()) / n,
        highlight=float(hist @ soft_white) / n,
        white_point=hist_quantile(hist, 0.99),
        black_point=hist_quantile(hist, 0.01),
        blockiness=_blockiness(gray),
        fine_side=float(fine_scale_side(gray.shape)),
    )
