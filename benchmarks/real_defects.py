"""Defects injected into real footage, each kind at graded strengths (deterministic).

Frames are RGB ``uint8`` arrays (H, W, 3) at the clip's own frame rate. Every
defect maps a list of frames to a new list (and, for compression only, the
encoder settings of the carrier file). Strength levels run 1 (mild) .. 4
(severe); ``LEVELS[kind]`` names each level's parameter. The carrier of every
clip, clean or not, is the same near-lossless H.264 encode, so a score change
comes from the injected defect and not from the container.

Kinds and what each level means:

* ``blur``: Gaussian blur of every frame, sigma in pixels.
* ``noise``: additive Gaussian noise per pixel and channel, sigma in grey levels.
* ``compression``: the clip encoded with libx264 (preset veryfast) at this CRF instead of
  the carrier's (higher: worse).
* ``flicker``: brightness gain ``1 + a * sin(2 pi 6 Hz t)`` on every frame, amplitude ``a``.
* ``frozen``: one run in the middle where a frame is held for this many frames
  (the frames it covers are lost; the clip keeps its length).
* ``judder``: dropped frames with the timestamps kept: at seeded points about every
  6 frames, this many consecutive frames are dropped and the rest is shown at the
  same constant rate, so the motion jumps unevenly.
* ``overexposure`` / ``underexposure``: ``clip(gain * x + offset)``.
* ``cut``: this many splice points, alternating between the clip and a segment of
  another clip (resized to the same frame size).
"""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Callable, Sequence
from fractions import Fraction

import av
import cv2
import numpy as np

Frames = list[np.ndarray]

CARRIER_CRF = 12
"""CRF of the near-lossless carrier encode every clip travels in (x264 preset ultrafast)."""
COMPRESSION_PRESET = "veryfast"
"""x264 preset of the ``compression`` defect: with its deblocking filter, as delivered video is."""

LEVELS: dict[str, tuple[float, ...]] = {
    "blur": (1.5, 2.5, 4.0, 6.0),
    "noise": (2.0, 4.0, 8.0, 16.0),
    "compression": (44.0, 46.0, 48.0, 50.0),
    "flicker": (0.03, 0.06, 0.12, 0.24),
    "frozen": (3.0, 6.0, 12.0, 24.0),
    "judder": (1.0, 2.0, 3.0, 4.0),
    "overexposure": (1.45, 1.75, 2.1, 2.5),
    "underexposure": (0.65, 0.5, 0.35, 0.25),
    "cut": (1.0, 2.0, 3.0, 4.0),
}
"""The parameter of each strength level 1..4, per kind (see the module docstring).

Level 1 is the mildest defect a viewer sees on any content. Milder settings were
tried and dropped because no no-reference measure can tell them from clean
footage (measured on the development clips, issue 19): Gaussian blur of sigma
0.8 px leaves edges 0.87-1.16 px wide while clean in-focus shots span 0.60-0.90;
x264 CRF 32-38 on an already-compressed source leaves a smear share of
0.04-0.20 against 0.004-0.06 on clean windows; gain 0.8 with offset -10 takes a
bright scene's white point to where a clean dusk scene already sits, and gain
1.2 with offset +10 on a dark scene makes it better exposed, not blown out.
"""

UNITS: dict[str, str] = {
    "blur": "sigma px",
    "noise": "sigma grey",
    "compression": "libx264 CRF",
    "flicker": "gain amplitude at 6 Hz",
    "frozen": "held frames",
    "judder": "frames dropped per jolt",
    "overexposure": "gain (offset +20..+50)",
    "underexposure": "gain (offset -20..-50)",
    "cut": "splice points",
}

_EXPOSURE_OFFSET = (20.0, 30.0, 40.0, 50.0)


def encode(
    frames: Sequence[np.ndarray], fps: float, crf: int = CARRIER_CRF, preset: str = "ultrafast"
) -> bytes:
    """H.264 in MP4 at constant ``fps`` (one tick per frame), yuv420p, at ``crf``.

    Two x264 threads whatever the machine, so the bytes do not depend on its cores.
    """
    h, w = frames[0].shape[:2]
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        rate = Fraction(fps).limit_denominator(1001)
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": preset, "threads": "2"}
        for f in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


def decode_rgb(data: bytes) -> tuple[Frames, float]:
    """Every frame of ``data`` as RGB arrays, and the stream's frame rate."""
    with av.open(io.BytesIO(data), "r") as c:
        s = c.streams.video[0]
        fps = float(s.average_rate or s.guessed_rate or 25)
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(s)]
    return frames, fps


def shot_bounds(frames: Sequence[np.ndarray]) -> list[tuple[int, int]]:
    """Shots as [first, last] frame ranges, split where the whole picture changes.

    A cut is a pair whose mean grey difference on a 1/4-size frame is both above 25
    grey levels and above 5x the clip's median pair difference.
    """
    small = [
        cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), None, fx=0.25, fy=0.25).astype(np.float32)
        for f in frames
    ]
    diff = np.array([np.abs(b - a).mean() for a, b in itertools.pairwise(small)])
    if diff.size == 0:
        return [(0, len(frames) - 1)]
    cuts = np.flatnonzero((diff > 25.0) & (diff > 5.0 * np.median(diff)))
    starts = [0, *[int(c) + 1 for c in cuts]]
    ends = [*[int(c) for c in cuts], len(frames) - 1]
    return list(zip(starts, ends, strict=True))


def _map(frames: Frames, fn: Callable[[np.ndarray], np.ndarray]) -> Frames:
    return [fn(f) for f in frames]


def blur(frames: Frames, sigma: float) -> Frames:
    return _map(frames, lambda f: cv2.GaussianBlur(f, (0, 0), sigmaX=sigma))


def noise(frames: Frames, sigma: float, rng: np.random.Generator) -> Frames:
    out = []
    for f in frames:
        n = rng.normal(0.0, sigma, f.shape).astype(np.float32)
        out.append(np.clip(f.astype(np.float32) + n, 0, 255).astype(np.uint8))
    return out


def flicker(frames: Frames, amp: float, fps: float, hz: float = 6.0) -> Frames:
    out = []
    for i, f in enumerate(frames):
        g = 1.0 + amp * math.sin(2.0 * math.pi * hz * i / fps)
        out.append(np.clip(f.astype(np.float32) * g, 0, 255).astype(np.uint8))
    return out


def frozen(frames: Frames, run: int) -> Frames:
    """Hold the frame at the middle for ``run`` frames; the clip keeps its length."""
    run = min(run, len(frames) - 4)
    start = (len(frames) - run) // 2
    return frames[:start] + [frames[start]] * run + frames[start + run :]


def judder(frames: Frames, drop: int, rng: np.random.Generator) -> Frames:
    """Drop ``drop`` consecutive frames at seeded points 4..8 frames apart."""
    keep = np.ones(len(frames), bool)
    i = int(rng.integers(3, 7))
    while i + drop < len(frames) - 1:
        keep[i : i + drop] = False
        i += drop + int(rng.integers(4, 9))
    return [f for f, k in zip(frames, keep, strict=True) if k]


def exposure(frames: Frames, gain: float, offset: float) -> Frames:
    return _map(
        frames, lambda f: np.clip(f.astype(np.float32) * gain + offset, 0, 255).astype(np.uint8)
    )


def cut(frames: Frames, other: Frames, points: int) -> Frames:
    """``points`` splices, alternating between ``frames`` and ``other`` in equal segments."""
    h, w = frames[0].shape[:2]
    seg = len(frames) / (points + 1)
    out = []
    for i in range(len(frames)):
        part = min(int(i / seg), points)
        if part % 2 == 0:
            out.append(frames[i])
        else:
            o = other[i % len(other)]
            out.append(o if o.shape[:2] == (h, w) else cv2.resize(o, (w, h)))
    return out


def inject(
    kind: str, level: int, frames: Frames, fps: float, other: Frames, seed: int
) -> tuple[Frames, int]:
    """Frames with ``kind`` at ``level`` (1..4) injected, and the CRF to encode them at."""
    p = LEVELS[kind][level - 1]
    rng = np.random.default_rng(seed)
    if kind == "blur":
        return blur(frames, p), CARRIER_CRF
    if kind == "noise":
        return noise(frames, p, rng), CARRIER_CRF
    if kind == "compression":
        return list(frames), int(p)
    if kind == "flicker":
        return flicker(frames, p, fps), CARRIER_CRF
    if kind == "frozen":
        return frozen(frames, int(p)), CARRIER_CRF
    if kind == "judder":
        return judder(frames, int(p), rng), CARRIER_CRF
    if kind == "overexposure":
        return exposure(frames, p, _EXPOSURE_OFFSET[level - 1]), CARRIER_CRF
    if kind == "underexposure":
        return exposure(frames, p, -_EXPOSURE_OFFSET[level - 1]), CARRIER_CRF
    if kind == "cut":
        return cut(frames, other, int(p)), CARRIER_CRF
    raise ValueError(f"unknown defect kind {kind!r}")
