"""Decode an encoded video (bytes) into uniformly sampled RGB frames, with limits.

The video input contract of the suite:

* Any container and codec FFmpeg (through PyAV) reads; tested: mp4/H.264,
  webm/VP9, gif. The first video stream is used; audio is ignored.
* Limits (bytes, duration, frames, width/height) are checked from the container
  header *before* decoding where the header says, and again while decoding, so
  an absurd header never allocates absurd memory.
* Frames come back as RGB uint8 ``(N, H, W, 3)``, uniformly sampled over the
  whole video when it holds more than ``max_samples`` frames, with their
  presentation times in seconds from the first frame.
* Every failure is an :class:`~lift.errors.InvalidInput` whose message says
  what is wrong with the file.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

import av
import cv2
import numpy as np

from lift.errors import InvalidInput, PayloadTooLarge

log = logging.getLogger(__name__)

# FFmpeg's own complaints about damaged input are expected here and are turned
# into InvalidInput; keep them out of the service log.
av.logging.set_level(av.logging.PANIC)


@dataclass(frozen=True)
class VideoLimits:
    """Bounds on accepted videos (service settings fill these in)."""

    max_bytes: int = 64 * 1024 * 1024
    max_duration_s: float = 120.0
    max_frames: int = 3600
    max_side_px: int = 4096
    min_side_px: int = 16


@dataclass(frozen=True)
class DecodedVideo:
    """Uniformly sampled RGB frames of one video and what the container said."""

    frames: np.ndarray
    """(N, H, W, 3) uint8 RGB, or (N, H, W) uint8 luma when decoded as "gray"."""
    timestamps: np.ndarray
    """(N,) float64, seconds from the first frame."""
    indices: np.ndarray
    """(N,) int64, index of each kept frame among all decoded frames."""
    total_frames: int
    fps: float
    duration_s: float
    width: int
    height: int
    container: str
    codec: str

    @property
    def num_sampled(self) -> int:
        """How many frames were kept."""
        return int(self.frames.shape[0])


class _UniformSampler:
    """Keep a uniform subset of a stream of unknown length in bounded memory.

    Frames are kept at a stride that doubles (dropping every other kept frame)
    whenever more than ``2 * target`` are held, so memory stays bounded; the
    final subset is then thinned to ``target`` evenly spaced frames.
    """

    def __init__(self, target: int) -> None:
        self.target = target
        self.stride = 1
        self.kept: list[tuple[int, float, np.ndarray]] = []

    def wants(self, index: int) -> bool:
        return index % self.stride == 0

    def add(self, index: int, time_s: float, rgb: np.ndarray) -> None:
        self.kept.append((index, time_s, rgb))
        if len(self.kept) > 2 * self.target:
            self.stride *= 2
            self.kept = [k for k in self.kept if k[0] % self.stride == 0]

    def result(self) -> list[tuple[int, float, np.ndarray]]:
        if len(self.kept) <= self.target:
            return self.kept
        pick = np.linspace(0, len(self.kept) - 1, self.target).round().astype(int)
        return [self.kept[i] for i in pick]


# Planar YUV layouts whose first plane is the luma, at full frame size.
_LUMA_FIRST = {"yuv420p", "yuv422p", "yuv444p", "yuvj420p", "yuvj422p", "yuvj444p", "nv12"}
# Limited-range ("TV", 16..235) luma stretched to full range 0..255.
_TV_TO_PC = np.clip((np.arange(256) - 16) * 255.0 / 219.0 + 0.5, 0, 255).astype(np.uint8)
_FULL_RANGE = 2  # AVCOL_RANGE_JPEG


def _to_pixels(frame: av.VideoFrame, pixel_format: str, width: int, height: int) -> np.ndarray:
    """Convert one decoded frame; luma is read straight from the Y plane when it can be."""
    name = frame.format.name
    if (
        pixel_format == "gray"
        and name in _LUMA_FIRST
        and (frame.width, frame.height) == (width, height)
    ):
        plane = frame.planes[0]
        raw = np.frombuffer(plane, np.uint8)  # type: ignore[call-overload]
        luma = raw.reshape(height, plane.line_size)[:, :width]
        full = name.startswith("yuvj") or frame.color_range == _FULL_RANGE
        return np.ascontiguousarray(luma) if full else cv2.LUT(luma, _TV_TO_PC)
    return frame.to_ndarray(format=pixel_format, width=width, height=height)


def _stream_fps(stream: av.video.stream.VideoStream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and 0 < float(rate) < 1000:
            return float(rate)
    return 0.0


def _check_size(width: int, height: int, limits: VideoLimits) -> None:
    if width > limits.max_side_px or height > limits.max_side_px:
        raise InvalidInput(
            f"the video is {width}x{height} pixels; the largest accepted side is "
            f"{limits.max_side_px} px: downscale it before sending"
        )
    if 0 < width < limits.min_side_px or 0 < height < limits.min_side_px:
        raise InvalidInput(
            f"the video is {width}x{height} pixels; both sides must be at least "
            f"{limits.min_side_px} px to be judged"
        )


PIXEL_FORMATS = ("rgb24", "gray")


def decode_video(
    data: bytes, limits: VideoLimits, max_samples: int = 64, pixel_format: str = "rgb24"
) -> DecodedVideo:
    """Decode ``data`` and return at most ``max_samples`` uniformly sampled frames.

    ``pixel_format`` is "rgb24" (colour) or "gray" (luma only: cheaper, and all
    a pixel-statistics critic needs).

    Raises :class:`InvalidInput` (or :class:`PayloadTooLarge`) with a sentence
    naming the problem for empty, oversized, unreadable, truncated, frameless,
    too long or too large videos.
    """
    if pixel_format not in PIXEL_FORMATS:
        raise ValueError(f"pixel_format must be one of {PIXEL_FORMATS}, got {pixel_format!r}")
    if not data:
        raise InvalidInput("the video is empty (0 bytes): send the encoded video file")
    if len(data) > limits.max_bytes:
        raise PayloadTooLarge(
            f"the video is {len(data)} bytes; the limit is {limits.max_bytes} bytes: "
            "send a shorter or more compressed video"
        )
    try:
        container = av.open(io.BytesIO(data), mode="r", metadata_errors="ignore")
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise InvalidInput(
            "the bytes are not a video FFmpeg can read (unknown or damaged container): "
            "send an mp4 (H.264), webm (VP9) or gif file"
        ) from exc
    with container:
        if not container.streams.video:
            raise InvalidInput(
                f"the file ({container.format.name}) has no video stream: send a video file"
            )
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        ctx = stream.codec_context
        _check_size(ctx.width, ctx.height, limits)
        fps = _stream_fps(stream)
        declared_frames = int(stream.frames or 0)
        header_duration = 0.0
        if stream.duration is not None and stream.time_base is not None:
            header_duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            header_duration = container.duration / 1_000_000
        if header_duration > limits.max_duration_s:
            raise InvalidInput(
                f"the video lasts {header_duration:.1f} s; the limit is "
                f"{limits.max_duration_s:.0f} s: trim it before sending"
            )
        if declared_frames > limits.max_frames:
            raise InvalidInput(
                f"the video has {declared_frames} frames; the limit is {limits.max_frames}: "
                "trim it or lower its frame rate"
            )
        frames, total, width, height = _decode_frames(
            container, stream, limits, max_samples, declared_frames, fps, pixel_format
        )
        codec = ctx.name
        container_name = container.format.name

    if total == 0:
        raise InvalidInput(
            "the video has no decodable frames: the file is empty, truncated or damaged"
        )
    if declared_frames and total < 0.9 * declared_frames - 1:
        raise InvalidInput(
            f"the video is truncated: its header declares {declared_frames} frames but only "
            f"{total} could be decoded; send the complete file"
        )
    indices = np.array([f[0] for f in frames], dtype=np.int64)
    times = np.array([f[1] for f in frames], dtype=np.float64)
    decoded_span = (total / fps) if fps > 0 else 0.0
    if header_duration > 1.0 and decoded_span < 0.8 * header_duration - 0.25:
        raise InvalidInput(
            f"the video is truncated: its header says {header_duration:.2f} s but only "
            f"{decoded_span:.2f} s could be decoded; send the complete file"
        )
    if fps <= 0:
        span = times[-1] - times[0] if len(times) > 1 else 0.0
        fps = (indices[-1] - indices[0]) / span if span > 0 else 8.0
    duration = max(header_duration, total / fps if fps > 0 else 0.0)
    return DecodedVideo(
        frames=np.stack([f[2] for f in frames]),
        timestamps=times,
        indices=indices,
        total_frames=total,
        fps=fps,
        duration_s=duration,
        width=width,
        height=height,
        container=container_name,
        codec=codec,
    )


def _decode_frames(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    limits: VideoLimits,
    max_samples: int,
    declared_frames: int,
    fps: float,
    pixel_format: str,
) -> tuple[list[tuple[int, float, np.ndarray]], int, int, int]:
    """Decode every frame, converting only the sampled ones to RGB."""
    if declared_frames > max_samples:
        wanted = set(np.linspace(0, declared_frames - 1, max_samples).round().astype(int).tolist())
        sampler = None
    else:
        wanted = None
        sampler = _UniformSampler(max_samples)
    kept: list[tuple[int, float, np.ndarray]] = []
    width = height = 0
    first_time: float | None = None
    index = -1
    try:
        for index, frame in enumerate(container.decode(stream)):
            if index == 0:
                width, height = frame.width, frame.height
                _check_size(width, height, limits)
            if index >= limits.max_frames:
                raise InvalidInput(
                    f"the video has more than {limits.max_frames} frames: trim it or lower "
                    "its frame rate"
                )
            t = float(frame.time) if frame.time is not None else index / (fps or 8.0)
            if first_time is None:
                first_time = t
            t -= first_time
            if t > limits.max_duration_s:
                raise InvalidInput(
                    f"the video lasts more than {limits.max_duration_s:.0f} s: trim it "
                    "before sending"
                )
            take = index in wanted if wanted is not None else sampler.wants(index)  # type: ignore[union-attr]
            if not take:
                continue
            # A stream may change size mid-way; keep the first size throughout.
            pixels = _to_pixels(frame, pixel_format, width, height)
            if sampler is not None:
                sampler.add(index, t, pixels)
            else:
                kept.append((index, t, pixels))
    except InvalidInput:
        raise
    except (av.FFmpegError, ValueError, OSError, MemoryError) as exc:
        if index < 0:
            raise InvalidInput(
                "the video stream could not be decoded (damaged or unsupported codec): "
                "send an mp4 (H.264), webm (VP9) or gif file"
            ) from exc
        raise InvalidInput(
            f"the video is damaged or truncated: decoding failed after {index} frames; "
            "send the complete file"
        ) from exc
    if sampler is not None:
        kept = sampler.result()
    return kept, index + 1, width, height
