"""Per-frame picture-quality measurements (no judgement yet): what :mod:`.fidelity` judges.

Called once per analysed frame from :func:`.measure.measure` (in its thread
pool) with the frame's grey levels at three sizes:

* ``gray``: full resolution (blockiness: gradient across 8x8 block edges
  versus inside blocks, strided);
* ``mid`` (halved until the long side is <= 400 px): sharpness (variance of
  the Laplacian) and noise (Immerkaer's estimator over the flattest cells);
* ``small`` (mid halved until <= 200 px): clipped shares of pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import cv2
import numpy as np

_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
_NOISE_SCALE = float(np.sqrt(np.pi / 2) / 6)


@dataclass(frozen=True)
class FrameQuality:
    """One frame's picture measurements."""

    sharpness: float
    """Variance of the Laplacian on the mid-size frame."""
    noise_sigma: float
    """Estimated noise standard deviation on the mid-size frame (grey levels)."""
    clipped_high: float
    """Fraction of pixels at >= 250 (small frame)."""
    clipped_low: float
    """Fraction of pixels at <= 5 (small frame)."""
    blockiness: float
    """Gradient across 8x8 block edges / gradient inside blocks (1 = none)."""


@dataclass(frozen=True)
class Quality:
    """The per-frame measurements of a clip as (N,) arrays, one field per FrameQuality field."""

    sharpness: np.ndarray
    noise_sigma: np.ndarray
    clipped_high: np.ndarray
    clipped_low: np.ndarray
    blockiness: np.ndarray

    @classmethod
    def stack(cls, frames: list[FrameQuality]) -> Quality:
        return cls(
            **{
                f.name: np.array([getattr(q, f.name) for q in frames], np.float64)
                for f in fields(FrameQuality)
            }
        )


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


def _noise_sigma(mid: np.ndarray) -> float:
    """Immerkaer (1996) noise estimate, over the flattest 20 % of an 8x8 grid of cells."""
    resp = cv2.convertScaleAbs(cv2.filter2D(mid, cv2.CV_16S, _IMMERKAER))
    cells = cv2.resize(resp, (8, 8), interpolation=cv2.INTER_AREA).astype(np.float32)
    return _NOISE_SCALE * float(np.quantile(cells, 0.2))


def _sharpness(mid: np.ndarray) -> float:
    _, std = cv2.meanStdDev(cv2.Laplacian(mid, cv2.CV_16S))
    return float(std[0, 0]) ** 2


def frame_quality(gray: np.ndarray, mid: np.ndarray, small: np.ndarray) -> FrameQuality:
    """Measure one frame given as uint8 grey levels at full, mid and small size."""
    return FrameQuality(
        sharpness=_sharpness(mid),
        noise_sigma=_noise_sigma(mid),
        clipped_high=float(np.count_nonzero(small >= 250)) / small.size,
        clipped_low=float(np.count_nonzero(small <= 5)) / small.size,
        blockiness=_blockiness(gray),
    )
