"""Encode RGB frames into a video file (bytes) with PyAV: mp4/H.264, webm/VP9 or gif."""

from __future__ import annotations

import io
from fractions import Fraction
from typing import cast

import av
import numpy as np

# container format -> (codec, pixel format, codec options)
_FORMATS: dict[str, tuple[str, str, dict[str, str]]] = {
    # mbtree off: with it, x264 gave different bytes (and decoded pixels, up to 28 grey
    # levels apart) for the same frames run to run; a generator promises the same frames
    # for the same seed, so the encoder must be deterministic.
    "mp4": ("libx264", "yuv420p", {"crf": "16", "preset": "veryfast", "x264-params": "mbtree=0"}),
    "webm": (
        "libvpx-vp9",
        "yuv420p",
        {"crf": "30", "b": "0", "deadline": "realtime", "cpu-used": "8"},
    ),
    "gif": ("gif", "rgb8", {}),
}


def encode_video(frames: np.ndarray, fps: float, fmt: str = "mp4") -> bytes:
    """Encode ``frames`` ((N, H, W, 3) uint8 RGB) at ``fps`` into a ``fmt`` file.

    H.264 and VP9 need even sides; frames with an odd side are refused rather
    than silently cropped.
    """
    if fmt not in _FORMATS:
        raise ValueError(f"unknown video format {fmt!r}; choose one of {sorted(_FORMATS)}")
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (N, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    n, height, width, _ = frames.shape
    codec, pix_fmt, options = _FORMATS[fmt]
    if fmt != "gif" and (height % 2 or width % 2):
        raise ValueError(f"{codec} needs even frame sides, got {width}x{height}")
    buf = io.BytesIO()
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(buf, mode="w", format=fmt) as out:
        stream = cast(av.VideoStream, out.add_stream(codec, rate=rate, options=dict(options)))
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frames[i]), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()
