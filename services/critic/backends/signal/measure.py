"""Raw per-frame and per-pair measurements of a decoded video (no judgement yet).

Everything runs on grey-level frames at two reduced sizes, which is what keeps
a full critique within a small factor of decoding:

* ``small`` (halved until the long side is <= 200 px): optical flow (OpenCV
  DIS, ultrafast preset, on contrast-normalised frames so brightness changes
  are not motion), frame differences, structural correlation, luminance
  histograms and a 4x4 grid of cell means;
* every size (full, ``mid`` <= 400 px, small): the per-frame picture-quality
  measurements of :mod:`.quality`.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields

import cv2
import numpy as np

from lift.services.critic.backends.signal.quality import FrameQuality, Quality, frame_quality

MID_MAX_SIDE = 400
SMALL_MAX_SIDE = 200
GRID = 4
LAGS = 6


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
    norm_diff: np.ndarray
    """(N-1,) the same on contrast-normalised frames (brightness changes do not count)."""
    lag_diff: np.ndarray
    """(N, LAGS) mean absolute difference of contrast-normalised frame t and frame t-j,
    j = 1..LAGS (NaN before the first frame): how the picture change grows over j frame
    steps of the clip's own motion, the scale a jump is measured in."""
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
    quality: Quality
    """Per-frame picture-quality measurements (:mod:`.quality`)."""


def _halve_until(gray: np.ndarray, max_side: int) -> np.ndarray:
    """Halve (area average, an exact integer factor, OpenCV's fast path) until small enough."""
    while max(gray.shape) > max_side and min(gray.shape) >= 16:
        gray = cv2.resize(gray, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    return gray


def _normalise(small: np.ndarray) -> np.ndarray:
    """Zero-mean, fixed-contrast uint8 copy, so flicker and exposure are not seen as motion."""
    mean, std = cv2.meanStdDev(small)
    scale = 48.0 / max(float(std[0, 0]), 1.0)
    return cv2.convertScaleAbs(small, alpha=scale, beta=128.0 - scale * float(mean[0, 0]))


QUALITY_FRAMES = 16
"""Most frames whose picture quality (:mod:`.quality`) is measured.

Timing defects (a repeated or dropped frame, a cut) live in single frames, so
motion is measured on every analysed frame; picture quality costs several
times more per frame and changes slowly, so on longer clips it is measured on
this many frames spread evenly in time and every other frame takes the reading
of the nearest measured one (16 keeps a critique within 1.5x of decoding to RGB
on a 49-frame 480x720 clip; a defect of the picture shorter than the gap between
two measured frames can be missed).
"""


@dataclass
class _FrameStats:
    quality: FrameQuality | None
    small: np.ndarray
    norm: np.ndarray
    coarse: np.ndarray
    hist: np.ndarray


def _frame_stats(frame: np.ndarray, with_quality: bool = True) -> _FrameStats:
    gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    mid = _halve_until(gray, MID_MAX_SIDE)
    small = _halve_until(mid, SMALL_MAX_SIDE)
    norm = _normalise(small)
    return _FrameStats(
        quality=frame_quality(gray, mid, small) if with_quality else None,
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
    with_quality = np.zeros(n, bool)
    with_quality[_quality_frames(times, QUALITY_FRAMES)] = True
    stats = list(_POOL.map(_frame_stats, frames, with_quality))
    if callable(should_stop):
        should_stop()
    stack = np.stack([s.small for s in stats]).astype(np.float32)
    coarse = np.stack([s.coarse for s in stats]).astype(np.float32)
    coarse -= coarse.mean(axis=1, keepdims=True)
    coarse /= np.linalg.norm(coarse, axis=1, keepdims=True) + 1e-6
    hist = np.stack([s.hist for s in stats])
    pairs = max(n - 1, 0)
    diff = np.abs(np.diff(stack, axis=0)).mean(axis=(1, 2)) if pairs else np.zeros(0)
    norm = np.stack([s.norm for s in stats]).astype(np.float32)
    lag_diff = np.full((n, LAGS), np.nan)
    for j in range(1, min(LAGS, n - 1) + 1):
        lag_diff[j:, j - 1] = np.abs(norm[j:] - norm[:-j]).mean(axis=(1, 2))
    norm_diff = lag_diff[1:, 0].copy() if pairs else np.zeros(0)
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
        norm_diff=norm_diff,
        lag_diff=lag_diff,
        hist_dist=hist_dist,
        structure_corr=corr,
        cell_velocity=velocity,
        speed=speed,
        cell_mean=cell_mean.reshape(n, -1),
        quality=_quality(stats, times, with_quality),
    )


def _quality_frames(times: np.ndarray, count: int) -> np.ndarray:
    """Indices of at most ``count`` frames at ``times`` spread evenly in time (all if fewer)."""
    n = times.size
    if n <= count:
        return np.arange(n)
    goals = np.linspace(float(times[0]), float(times[-1]), count)
    return np.unique(np.abs(times[None, :] - goals[:, None]).argmin(axis=1))


def _quality(stats: list[_FrameStats], times: np.ndarray, measured: np.ndarray) -> Quality:
    """Per-frame quality: each frame's own reading, or the nearest measured frame's."""
    idx = np.flatnonzero(measured)
    q = Quality.stack([fq for i in idx if (fq := stats[i].quality) is not None])
    if idx.size == times.size:
        return q
    nearest = np.abs(times[:, None] - times[idx][None, :]).argmin(axis=1)
    return Quality(**{f.name: getattr(q, f.name)[nearest] for f in fields(Quality)})


_MIN_FLOW_SIDE = 32


def _flow(small: list[np.ndarray], should_stop: object) -> tuple[np.ndarray, np.ndarray]:
    n = len(small)
    velocity = np.zeros((max(n - 1, 0), GRID * GRID, 2), np.float32)
    speed = np.zeros(max(n - 1, 0), np.float32)
    if n and min(small[0].shape) < _MIN_FLOW_SIDE:
        # DIS builds an image pyramid and fails on slivers (e.g. 16x4000 video):
        # stretch the short side up; flow is only compared between frames.
        h, w = small[0].shape
        size = (max(w, _MIN_FLOW_SIDE), max(h, _MIN_FLOW_SIDE))
        small = [cv2.resize(f, size, interpolation=cv2.INTER_LINEAR) for f in small]
    # The pairs in two halves on the pool's two threads (DIS releases the GIL), each
    # with its own DIS object; every pair's flow depends on its two frames only.
    pairs = max(n - 1, 0)
    spans = [(0, pairs // 2), (pairs // 2, pairs)]
    list(_POOL.map(lambda ab: _flow_span(small, ab[0], ab[1], velocity, speed, should_stop), spans))
    return velocity, speed


def _flow_span(
    small: list[np.ndarray],
    first: int,
    stop: int,
    velocity: np.ndarray,
    speed: np.ndarray,
    should_stop: object,
) -> None:
    """Flow of pairs ``first``..``stop - 1`` into ``velocity`` and ``speed``."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)  # type: ignore[attr-defined]
    fine = 4 * GRID
    top = max(1, fine * fine // 20)
    for t in range(first, stop):
        if callable(should_stop):
            should_stop()
        flow = dis.calc(small[t], small[t + 1], None)
        # A 16x16 grid of mean flow: the coarse 4x4 velocities, and the top 5 % of
        # cell speeds as the speed of whatever moves most (a subject, a pan).
        cells = cv2.resize(flow, (fine, fine), interpolation=cv2.INTER_AREA)
        velocity[t] = cells.reshape(GRID, 4, GRID, 4, 2).mean(axis=(1, 3)).reshape(-1, 2)
        mag = cv2.magnitude(cells[..., 0], cells[..., 1]).ravel()
        speed[t] = float(np.sort(mag)[-top:].mean())
