"""Raw per-frame and per-pair measurements of a decoded video (no judgement yet).

Everything runs on grey-level frames at two reduced sizes, which is what keeps
a full critique within a small factor of decoding:

* ``mid`` (halved until the long side is <= 400 px): sharpness (variance of
  the Laplacian) and noise (Immerkaer's estimator over the flattest cells);
* ``small`` (mid halved until <= 200 px): optical flow (OpenCV DIS, ultrafast
  preset, on contrast-normalised frames so brightness changes are not motion),
  frame differences, structural correlation, luminance histograms, exposure and
  a 4x4 grid of cell means;
* full resolution, luma only, strided: blockiness (gradient across 8x8 block
  boundaries versus inside blocks).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

MID_MAX_SIDE = 400
SMALL_MAX_SIDE = 200
GRID = 4
_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
_NOISE_SCALE = float(np.sqrt(np.pi / 2) / 6)


@dataclass(frozen=True)
class Measurements:
    """Raw signals; per-pair arrays have N-1 entries, per-frame arrays N."""

    times: np.ndarray
    """(N,) seconds of each analysed frame."""
    frame_step_s: float
    """Typical time between analysed frames."""
    diag_px: float
    """Diagonal of the small analysis frame, px (flow is in small-frame px)."""
    diff: np.ndarray
    """(N-1,) mean absolute grey difference between consecutive frames (0..255)."""
    hist_dist: np.ndarray
    """(N-1,) L1 distance of consecutive 32-bin luminance histograms (0..2)."""
    structure_corr: np.ndarray
    """(N-1,) correlation of consecutive coarse, contrast-normalised frames (-1..1)."""
    cell_velocity: np.ndarray
    """(N-1, GRID*GRID, 2) mean optical flow per grid cell, small-frame px."""
    speed: np.ndarray
    """(N-1,) mean of the top 5 % flow magnitudes (the moving subject's speed), px."""
    cell_mean: np.ndarray
    """(N, GRID*GRID) mean grey level per grid cell."""
    sharpness: np.ndarray
    """(N,) variance of the Laplacian on the mid-size frame."""
    noise_sigma: np.ndarray
    """(N,) estimated noise standard deviation on the mid-size frame (grey levels)."""
    clipped_high: np.ndarray
    """(N,) fraction of pixels at >= 250."""
    clipped_low: np.ndarray
    """(N,) fraction of pixels at <= 5."""
    blockiness: np.ndarray
    """(N,) gradient across 8x8 block edges / gradient inside blocks (1 = none)."""


def _halve_until(gray: np.ndarray, max_side: int) -> np.ndarray:
    """Halve (area average, an exact integer factor, OpenCV's fast path) until small enough."""
    while max(gray.shape) > max_side and min(gray.shape) >= 16:
        gray = cv2.resize(gray, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
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


def _noise_sigma(mid: np.ndarray) -> float:
    """Immerkaer (1996) noise estimate, over the flattest 20 % of an 8x8 grid of cells."""
    resp = cv2.convertScaleAbs(cv2.filter2D(mid, cv2.CV_16S, _IMMERKAER))
    cells = cv2.resize(resp, (8, 8), interpolation=cv2.INTER_AREA).astype(np.float32)
    return _NOISE_SCALE * float(np.quantile(cells, 0.2))


def _sharpness(mid: np.ndarray) -> float:
    _, std = cv2.meanStdDev(cv2.Laplacian(mid, cv2.CV_16S))
    return float(std[0, 0]) ** 2


def _normalise(small: np.ndarray) -> np.ndarray:
    """Zero-mean, fixed-contrast uint8 copy, so flicker and exposure are not seen as motion."""
    mean, std = cv2.meanStdDev(small)
    scale = 48.0 / max(float(std[0, 0]), 1.0)
    return cv2.convertScaleAbs(small, alpha=scale, beta=128.0 - scale * float(mean[0, 0]))


@dataclass
class _FrameStats:
    block: float
    sharp: float
    noise: float
    small: np.ndarray
    norm: np.ndarray
    coarse: np.ndarray
    hist: np.ndarray


def _frame_stats(frame: np.ndarray) -> _FrameStats:
    gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    mid = _halve_until(gray, MID_MAX_SIDE)
    small = _halve_until(mid, SMALL_MAX_SIDE)
    norm = _normalise(small)
    return _FrameStats(
        block=_blockiness(gray),
        sharp=_sharpness(mid),
        noise=_noise_sigma(mid),
        small=small,
        norm=norm,
        coarse=cv2.resize(norm, (16, 12), interpolation=cv2.INTER_AREA).ravel(),
        hist=cv2.calcHist([small], [0], None, [32], [0, 256]).ravel() / small.size,
    )


# OpenCV releases the GIL, so two threads measure frames in parallel.
_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="signal-measure")


def measure(frames: np.ndarray, times: np.ndarray, should_stop: object = None) -> Measurements:
    """Measure ``frames`` ((N, H, W) uint8 luma or (N, H, W, 3) RGB) at ``times`` seconds.

    ``should_stop``, when given, is a zero-argument callable checked between
    stages; it raises to abandon the work (deadline passed, caller gone).
    """
    n = frames.shape[0]
    if callable(should_stop):
        should_stop()
    stats = list(_POOL.map(_frame_stats, frames))
    if callable(should_stop):
        should_stop()
    stack = np.stack([s.small for s in stats]).astype(np.float32)
    coarse = np.stack([s.coarse for s in stats]).astype(np.float32)
    coarse -= coarse.mean(axis=1, keepdims=True)
    coarse /= np.linalg.norm(coarse, axis=1, keepdims=True) + 1e-6
    hist = np.stack([s.hist for s in stats])
    pairs = max(n - 1, 0)
    diff = np.abs(np.diff(stack, axis=0)).mean(axis=(1, 2)) if pairs else np.zeros(0)
    hist_dist = np.abs(np.diff(hist, axis=0)).sum(axis=1) if pairs else np.zeros(0)
    corr = (coarse[1:] * coarse[:-1]).sum(axis=1) if pairs else np.zeros(0)
    h, w = stack.shape[1:]
    ch, cw = h // GRID, w // GRID
    cell_mean = stack[:, : ch * GRID, : cw * GRID].reshape(n, GRID, ch, GRID, cw).mean(axis=(2, 4))
    velocity, speed = _flow([s.norm for s in stats], should_stop)
    steps = np.diff(times)
    return Measurements(
        times=times,
        frame_step_s=float(np.median(steps)) if steps.size else 0.125,
        diag_px=float(np.hypot(h, w)),
        diff=diff,
        hist_dist=hist_dist,
        structure_corr=corr,
        cell_velocity=velocity,
        speed=speed,
        cell_mean=cell_mean.reshape(n, -1),
        sharpness=np.array([s.sharp for s in stats]),
        noise_sigma=np.array([s.noise for s in stats]),
        clipped_high=(stack >= 250).mean(axis=(1, 2)),
        clipped_low=(stack <= 5).mean(axis=(1, 2)),
        blockiness=np.array([s.block for s in stats]),
    )


_MIN_FLOW_SIDE = 32


def _flow(small: list[np.ndarray], should_stop: object) -> tuple[np.ndarray, np.ndarray]:
    n = len(small)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)  # type: ignore[attr-defined]
    fine = 4 * GRID
    velocity = np.zeros((max(n - 1, 0), GRID * GRID, 2), np.float32)
    speed = np.zeros(max(n - 1, 0), np.float32)
    top = max(1, fine * fine // 20)
    if n and min(small[0].shape) < _MIN_FLOW_SIDE:
        # DIS builds an image pyramid and fails on slivers (e.g. 16x4000 video):
        # stretch the short side up; flow is only compared between frames.
        h, w = small[0].shape
        size = (max(w, _MIN_FLOW_SIDE), max(h, _MIN_FLOW_SIDE))
        small = [cv2.resize(f, size, interpolation=cv2.INTER_LINEAR) for f in small]
    for t in range(n - 1):
        if callable(should_stop):
            should_stop()
        flow = dis.calc(small[t], small[t + 1], None)
        # A 16x16 grid of mean flow: the coarse 4x4 velocities, and the top 5 % of
        # cell speeds as the speed of whatever moves most (a subject, a pan).
        cells = cv2.resize(flow, (fine, fine), interpolation=cv2.INTER_AREA)
        velocity[t] = cells.reshape(GRID, 4, GRID, 4, 2).mean(axis=(1, 3)).reshape(-1, 2)
        mag = cv2.magnitude(cells[..., 0], cells[..., 1]).ravel()
        speed[t] = float(np.sort(mag)[-top:].mean())
    return velocity, speed
