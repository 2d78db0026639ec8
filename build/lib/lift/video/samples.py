"""Deterministic sample clips: a clean clip and one twin per defect.

Every clip has the size CogVideoX produces (49 frames, 480x720, 8 fps). A twin
is the clean clip with one defect injected over a known span of frames, so
tests can check that the critic names the defect *where* it was injected.
Used by the tests, ``make demo``, ``make bench`` and ``lift debug samples``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from lift.video.encode import encode_video

NUM_FRAMES, HEIGHT, WIDTH, FPS = 49, 480, 720, 8.0
PAN_PX_PER_FRAME = 3
# The defect span used by every twin but the cut (frames, inclusive start, exclusive end).
DEFECT_SPAN = (18, 31)
CUT_FRAME = 24


@dataclass(frozen=True)
class SampleClip:
    """A rendered sample: its frames and where its defect is (None for the clean clip)."""

    name: str
    frames: np.ndarray
    fps: float
    defect: str | None
    span_frames: tuple[int, int] | None

    @property
    def span_s(self) -> tuple[float, float] | None:
        """The defect span in seconds (start of first to end of last affected frame)."""
        if self.span_frames is None:
            return None
        return self.span_frames[0] / self.fps, self.span_frames[1] / self.fps

    def encode(self, fmt: str = "mp4") -> bytes:
        """The clip as an encoded video file."""
        return encode_video(self.frames, self.fps, fmt)


def _texture(seed: int, height: int, width: int) -> np.ndarray:
    """A sharp, detailed background: gradient, stripes, a checker patch, blocks, text."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(60, 160, size=3).astype(np.float32)
    img = np.empty((height, width, 3), np.float32)
    for c in range(3):
        img[..., c] = base[c] + 40 * np.sin(xx / (90 + 30 * c) + c) * np.cos(yy / 120)
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(60):
        x, y = int(rng.integers(0, width - 40)), int(rng.integers(0, height - 40))
        w, h = int(rng.integers(8, 60)), int(rng.integers(8, 60))
        color = tuple(float(v) for v in rng.uniform(20, 235, size=3))
        cv2.rectangle(img, (x, y), (x + w, y + h), color, -1)
    checker = ((xx // 11 + yy // 11) % 2).astype(np.float32)
    patch = (slice(height // 2, height // 2 + 96), slice(40, 40 + 160))
    img[patch] = (60 + 150 * checker[patch]).astype(np.uint8)[..., None]
    for i in range(6):
        cv2.putText(
            img,
            f"LIFT {seed}-{i}",
            (int(rng.integers(0, width - 200)), 40 + 75 * i),
            cv2.FONT_HERSHEY_SIMPLEX,
            1.0,
            (240, 240, 240),
            2,
            cv2.LINE_AA,
        )
    return img


def _render(t: float, seed: int = 0, moving: bool = True) -> np.ndarray:
    """The scene at (possibly fractional) frame time ``t``: panning background + 3 objects."""
    tex = _texture_cached(seed)
    v = 1.0 if moving else 0.0
    x0 = round(PAN_PX_PER_FRAME * t * v)
    frame = np.ascontiguousarray(tex[:, x0 : x0 + WIDTH]).copy()
    rng = np.random.default_rng(seed + 1000)
    colors = [tuple(float(c) for c in rng.uniform(30, 255, size=3)) for _ in range(3)]
    s = 16  # cv2 sub-pixel shift: coordinates in 1/16 px, so motion is smooth
    cx, cy = 120 + 9.0 * t * v, 150 + 40 * np.sin(0.15 * t * v)
    cv2.circle(frame, (int(cx * s), int(cy * s)), 45 * s, colors[0], -1, cv2.LINE_AA, 4)
    rx, ry = 560 - 6.0 * t * v, 330 - 2.5 * t * v
    pts = np.array([[rx - 50, ry - 35], [rx + 50, ry - 35], [rx + 50, ry + 35], [rx - 50, ry + 35]])
    cv2.fillPoly(frame, [(pts * s).astype(np.int32)], colors[1], cv2.LINE_AA, 4)
    ex, ey = 360 + 120 * np.sin(0.12 * t * v), 400 - 3.0 * t * v
    cv2.ellipse(
        frame,
        (int(ex * s), int(ey * s)),
        (60 * s, 28 * s),
        20 * t * v,
        0,
        360,
        colors[2],
        -1,
        cv2.LINE_AA,
        4,
    )
    return frame


_TEXTURES: dict[int, np.ndarray] = {}


def _texture_cached(seed: int) -> np.ndarray:
    if seed not in _TEXTURES:
        _TEXTURES[seed] = _texture(seed, HEIGHT, WIDTH + PAN_PX_PER_FRAME * (NUM_FRAMES + 8))
    return _TEXTURES[seed]


def _clean(moving: bool = True) -> np.ndarray:
    return np.stack([_render(float(t), moving=moving) for t in range(NUM_FRAMES)])


def _in_span(fn: Callable[[int, np.ndarray], np.ndarray]) -> np.ndarray:
    frames = _clean()
    for i in range(*DEFECT_SPAN):
        frames[i] = fn(i, frames[i])
    return frames


def _flicker() -> np.ndarray:
    def gain(i: int, f: np.ndarray) -> np.ndarray:
        g = 1.0 + 0.18 * (1 if i % 2 else -1)
        return np.clip(f.astype(np.float32) * g, 0, 255).astype(np.uint8)

    return _in_span(gain)


def _frozen() -> np.ndarray:
    frames = _clean()
    a, b = DEFECT_SPAN
    frames[a:b] = frames[a]
    return frames


def _judder() -> np.ndarray:
    # Uneven time steps (−0.2 then +2.2 frames): the motion lurches back and forth.
    return _in_span(lambda i, f: _render(i + 0.6 * (1 if i % 2 else -1)))


def _blur() -> np.ndarray:
    return _in_span(lambda i, f: cv2.GaussianBlur(f, (0, 0), 2.5))


def _noise() -> np.ndarray:
    rng = np.random.default_rng(7)

    def add(i: int, f: np.ndarray) -> np.ndarray:
        n = rng.normal(0, 22, size=f.shape).astype(np.float32)
        return np.clip(f.astype(np.float32) + n, 0, 255).astype(np.uint8)

    return _in_span(add)


def _cut() -> np.ndarray:
    frames = _clean()
    for i in range(CUT_FRAME, NUM_FRAMES):
        frames[i] = _render(float(i), seed=5)
    return frames


def _blocky() -> np.ndarray:
    def blocks(i: int, f: np.ndarray) -> np.ndarray:
        h, w = f.shape[:2]
        small = cv2.resize(f, (w // 8, h // 8), interpolation=cv2.INTER_AREA)
        up = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
        return cv2.addWeighted(f, 0.25, up, 0.75, 0)

    return _in_span(blocks)


def _overexposed() -> np.ndarray:
    return _in_span(lambda i, f: np.clip(f.astype(np.float32) * 2.6 + 40, 0, 255).astype(np.uint8))


# name -> (renderer, defect tag the critic should report, span)
_SAMPLES: dict[str, tuple[Callable[[], np.ndarray], str | None, tuple[int, int] | None]] = {
    "clean": (_clean, None, None),
    "flicker": (_flicker, "flicker", DEFECT_SPAN),
    "frozen": (_frozen, "frozen_frames", DEFECT_SPAN),
    "judder": (_judder, "judder", DEFECT_SPAN),
    "blur": (_blur, "blur", DEFECT_SPAN),
    "noise": (_noise, "noise", DEFECT_SPAN),
    "cut": (_cut, "abrupt_cut", (CUT_FRAME - 1, CUT_FRAME + 1)),
    "blocky": (_blocky, "blockiness", DEFECT_SPAN),
    "overexposed": (_overexposed, "overexposure", DEFECT_SPAN),
    "static": (lambda: _clean(moving=False), "static_video", (0, NUM_FRAMES)),
}

SAMPLE_NAMES: tuple[str, ...] = tuple(_SAMPLES)
"""Every sample: "clean" first, then the defect twins."""


def make_sample(name: str) -> SampleClip:
    """Render the sample called ``name`` (one of :data:`SAMPLE_NAMES`)."""
    if name not in _SAMPLES:
        raise ValueError(f"unknown sample {name!r}; choose one of {', '.join(SAMPLE_NAMES)}")
    render, defect, span = _SAMPLES[name]
    return SampleClip(name=name, frames=render(), fps=FPS, defect=defect, span_frames=span)


def write_samples(directory: Path, names: tuple[str, ...] = SAMPLE_NAMES) -> list[Path]:
    """Encode the named samples as H.264 mp4 files into ``directory``; return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        path = directory / f"{name}.mp4"
        path.write_bytes(make_sample(name).encode("mp4"))
        paths.append(path)
    return paths
