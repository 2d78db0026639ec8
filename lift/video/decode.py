"""Decode an encoded video (bytes) into RGB frames sampled evenly in time, with limits.

The video input contract of the suite:

* Any container and codec FFmpeg (through PyAV) reads; tested: mp4/H.264,
  mkv, webm/VP9, gif, and still images (png, jpeg: one frame). The first video
  stream is used; audio is ignored.
* Limits (bytes, duration, frames, width/height, decoded pixels) are checked
  from the container header *before* decoding where the header says, and again
  on every decoded frame, so neither an absurd header nor a stream that changes
  size mid-way allocates absurd memory: the decoder itself is told the largest
  picture it may allocate.
* Timing comes from presentation timestamps: a variable-frame-rate video is
  judged on its real timeline, frames are sampled evenly in *time*, and the
  duration is where the last frame ends.
* The container's display matrix (a phone clip recorded in portrait) is
  applied, so frames come back upright, in the size they are shown.
* Frames come back as RGB uint8 ``(N, H, W, 3)``, at most ``max_samples`` of
  them, with their presentation times in seconds from the first frame.
* Every failure is an :class:`~lift.errors.InvalidInput` whose message says
  what is wrong with the file (never anything about the server).
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass

import av
import cv2
import numpy as np
from av.sidedata.sidedata import SideData

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
    max_decoded_pixels: int = 8 * 1024**3
    """Most pixels decoded over all frames (bounds decoding work: 3600 frames of 1080p fit)."""


@dataclass(frozen=True)
class DecodedVideo:
    """Frames of one video sampled evenly in time, and what the container said."""

    frames: np.ndarray
    """(N, H, W, 3) uint8 RGB, or (N, H, W) uint8 luma when decoded as "gray"; upright."""
    timestamps: np.ndarray
    """(N,) float64, presentation time in seconds from the first frame."""
    indices: np.ndarray
    """(N,) int64, index of each kept frame among all decoded frames."""
    total_frames: int
    fps: float
    """Mean frame rate over the decoded timeline (frames / duration)."""
    duration_s: float
    """From the first frame's presentation time to the end of the last frame."""
    width: int
    """Shown width (after the container's rotation)."""
    height: int
    container: str
    codec: str

    @property
    def num_sampled(self) -> int:
        """How many frames were kept."""
        return int(self.frames.shape[0])


@dataclass(frozen=True)
class _Candidate:
    index: int
    time_s: float
    frame: av.VideoFrame | None


class _GoalSampler:
    """Pick, from a stream of timestamped frames, the one nearest each goal time.

    Causal and bounded: it holds the previous frame and the picks (at most one
    per goal), never the rest of the stream. A frame picked for one goal is not
    picked again; when the frame before a goal is already taken, the one after
    it is. Frames arrive in presentation order with increasing times.
    """

    def __init__(self, goals: np.ndarray) -> None:
        self.goals = goals
        self.next_goal = 0
        self.prev: _Candidate | None = None
        self.picked: list[_Candidate] = []

    def _take(self, item: _Candidate) -> None:
        if not self.picked or self.picked[-1] is not item:
            self.picked.append(item)

    def offer(self, item: _Candidate) -> None:
        while self.next_goal < len(self.goals) and item.time_s >= self.goals[self.next_goal]:
            goal = float(self.goals[self.next_goal])
            prev = self.prev
            if (
                prev is not None
                and goal - prev.time_s <= item.time_s - goal
                and (not self.picked or self.picked[-1] is not prev)
            ):
                self._take(prev)
            else:
                self._take(item)
            self.next_goal += 1
        self.prev = item

    def result(self) -> list[_Candidate]:
        # Goals past the last frame (the stream ended earlier than its packets
        # said): the last frame stands for them.
        if self.prev is not None and (self.next_goal < len(self.goals) or not self.picked):
            self._take(self.prev)
        return self.picked


SAMPLINGS = ("time", "index")


MIN_KEPT_FRAMES = 64
"""A memory bound never lowers the frames kept below this (see :func:`decode_video`)."""
_CHANNELS = {"rgb24": 3, "gray": 1}


def kept_frames(max_samples: int, max_kept_bytes: int, frame_bytes: int) -> int:
    """How many of ``max_samples`` frames of ``frame_bytes`` each fit ``max_kept_bytes``."""
    fit = max_kept_bytes // max(frame_bytes, 1)
    return max(min(max_samples, MIN_KEPT_FRAMES), min(max_samples, fit))


def _goals(times: np.ndarray, count: int, sampling: str = "time") -> np.ndarray:
    """Goal times for ``count`` samples of frames at ``times``: every frame, or even spacing.

    ``time``: evenly spread in time. ``index``: the frames at
    ``floor(linspace(0, n - 1, count))``, as LLaVA-style reference code picks them.
    """
    if times.size <= count:
        return times
    if sampling == "index":
        return times[np.linspace(0, times.size - 1, count).astype(np.int64)]
    return np.linspace(float(times[0]), float(times[-1]), count)


def even_indices(times: np.ndarray, count: int) -> np.ndarray:
    """Indices of ``count`` frames at ``times`` (seconds, increasing) spread evenly in time.

    The same rule the decoder samples with, so taking ``count`` of a video's
    frames afterwards picks what decoding with ``max_samples=count`` picks.
    """
    sampler = _GoalSampler(_goals(np.asarray(times, dtype=np.float64), count))
    for i, t in enumerate(times):
        sampler.offer(_Candidate(i, float(t), None))
    return np.array([c.index for c in sampler.result()], dtype=np.int64)


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


Orient = Callable[[np.ndarray], np.ndarray]


def _identity(a: np.ndarray) -> np.ndarray:
    return a


def _display_matrix(frame: av.VideoFrame) -> tuple[int, ...] | None:
    """The frame's 3x3 display matrix (FFmpeg's fixed-point layout), or None when it has none.

    PyAV cannot enumerate side data of types newer than itself (FFmpeg 8 attaches
    a JPEG's EXIF block as one), so then the matrix is rebuilt from the rotation
    PyAV reads directly: the turn survives, a mirror flip would not.
    """
    try:
        side = frame.side_data.get("DISPLAYMATRIX")
    except ValueError:
        try:
            ccw = math.radians(frame.rotation)
        except (ValueError, TypeError):
            return None
        if not ccw:
            return None
        cos, sin = round(math.cos(ccw) * 65536), round(math.sin(ccw) * 65536)
        return (cos, -sin, 0, sin, cos, 0, 0, 0, 1 << 30)
    if not isinstance(side, SideData):
        return None
    raw = bytes(side)
    return struct.unpack("=9i", raw) if len(raw) == 36 else None


def _orientation(frame: av.VideoFrame) -> tuple[Orient, bool]:
    """How to turn a decoded frame upright, and whether that swaps width and height.

    Reads the display matrix the container attached (mp4 ``tkhd``, a phone's
    portrait flag) and applies FFmpeg's own auto-rotation rules (fftools
    ``autorotate``): quarter turns and mirror flips. Other angles are left as
    coded (FFmpeg would rotate with black corners; nobody records that).
    """
    m = _display_matrix(frame)
    if m is None:
        return _identity, False
    a, b, c, d = (v / 65536.0 for v in (m[0], m[1], m[3], m[4]))
    sx, sy = math.hypot(a, c), math.hypot(b, d)
    if sx == 0 or sy == 0:
        return _identity, False
    # av_display_rotation_get is counter-clockwise; theta is the clockwise turn to apply.
    theta = -round(-math.degrees(math.atan2(b / sy, a / sx)))
    theta -= 360 * math.floor(theta / 360 + 0.9 / 360)
    if abs(theta - 90) < 1:
        if m[3] > 0:  # transpose "cclock_flip": a plain transpose
            return (lambda x: np.swapaxes(x, 0, 1)), True
        return (lambda x: np.rot90(x, -1)), True
    if abs(theta - 180) < 1:
        flip_lr, flip_ud = m[0] < 0, m[4] < 0

        def half(x: np.ndarray) -> np.ndarray:
            if flip_lr:
                x = x[:, ::-1]
            return x[::-1] if flip_ud else x

        return half, False
    if abs(theta - 270) < 1:
        if m[3] < 0:  # transpose "clock_flip"
            return (lambda x: np.rot90(x, -1)[::-1]), True
        return (lambda x: np.rot90(x, 1)), True
    if abs(theta) < 1 and m[4] < 0:
        return (lambda x: x[::-1]), False
    return _identity, False


def _stream_fps(stream: av.video.stream.VideoStream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and 0 < float(rate) < 1000:
            return float(rate)
    return 0.0


def _check_size(width: int, height: int, limits: VideoLimits, where: str = "") -> None:
    what = f"the video{where} is {width}x{height} pixels"
    if width > limits.max_side_px or height > limits.max_side_px:
        raise InvalidInput(
            f"{what}; the largest accepted side is {limits.max_side_px} px: "
            "downscale it before sending"
        )
    if 0 < width < limits.min_side_px or 0 < height < limits.min_side_px:
        raise InvalidInput(
            f"{what}; both sides must be at least {limits.min_side_px} px to be judged"
        )


PIXEL_FORMATS = ("rgb24", "gray")


def _packet_times(data: bytes, stream_index: int, limits: VideoLimits, gap: float) -> np.ndarray:
    """Presentation times (s, from the first, sorted) of the video's packets: no decoding.

    Reading the packet headers first gives the whole timeline before any frame
    is decoded, so frames can be sampled evenly in time in one decoding pass
    holding only the picks, and an over-long video is refused before decoding.
    Packets without a timestamp count one typical frame step apart (all of
    them, when any lacks one or the timestamps restart).
    """
    stamps: list[float | None] = []
    restarts = False
    last_dts: int | None = None
    try:
        with av.open(io.BytesIO(data), mode="r", metadata_errors="ignore") as container:
            stream = container.streams.video[stream_index]
            for packet in container.demux(stream):
                if packet.size == 0 or packet.is_discard:
                    continue
                # Decode order never goes back, B-frames or not; a restart does.
                if packet.dts is not None:
                    restarts |= last_dts is not None and packet.dts < last_dts
                    last_dts = packet.dts
                stamps.append(
                    float(packet.pts * packet.time_base)
                    if packet.pts is not None and packet.time_base is not None
                    else None
                )
                if len(stamps) > limits.max_frames:
                    raise InvalidInput(
                        f"the video has more than {limits.max_frames} frames: trim it or "
                        "lower its frame rate"
                    )
    except (av.FFmpegError, ValueError, OSError):
        pass  # a damaged tail: decoding says what is wrong with it
    if not stamps:
        return np.zeros(0)
    if restarts or any(t is None or not math.isfinite(t) for t in stamps):
        # Missing, or restarting (segments joined without re-stamping): the
        # decoder counts such frames a step apart, so count them so here too.
        return np.arange(len(stamps)) * gap
    times = np.sort(np.array(stamps, dtype=np.float64))
    return times - times[0]


def decode_video(
    data: bytes,
    limits: VideoLimits,
    max_samples: int = 64,
    pixel_format: str = "rgb24",
    sampling: str = "time",
    max_kept_bytes: int | None = None,
) -> DecodedVideo:
    """Decode ``data`` and return at most ``max_samples`` frames, evenly spread in time.

    ``pixel_format`` is "rgb24" (colour) or "gray" (luma only: cheaper, and all
    a pixel-statistics critic needs). ``max_kept_bytes`` bounds the memory of
    the frames returned: a larger picture keeps fewer frames, but never fewer
    than ``min(MIN_KEPT_FRAMES, max_samples)`` (what every critic analysed
    before the bound existed).

    Raises :class:`InvalidInput` (or :class:`PayloadTooLarge`) with a sentence
    naming the problem for empty, oversized, unreadable, truncated, frameless,
    too long or too large videos.
    """
    if pixel_format not in PIXEL_FORMATS:
        raise ValueError(f"pixel_format must be one of {PIXEL_FORMATS}, got {pixel_format!r}")
    if max_samples < 1:
        raise ValueError(f"max_samples must be at least 1, got {max_samples}")
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
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
        # The decoder refuses (before allocating) any picture larger than this,
        # whatever the header said: a stream may switch to 8192x8192 mid-way.
        ctx.options = {**ctx.options, "max_pixels": str(limits.max_side_px**2)}
        fps_hint = _stream_fps(stream)
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
        if max_kept_bytes is not None:
            max_samples = kept_frames(
                max_samples, max_kept_bytes, ctx.width * ctx.height * _CHANNELS[pixel_format]
            )
        gap = 1.0 / fps_hint if fps_hint > 0 else 0.125
        timeline = _packet_times(data, stream.index, limits, gap)
        if timeline.size and timeline[-1] > limits.max_duration_s:
            raise InvalidInput(
                f"the video lasts {timeline[-1]:.1f} s; the limit is "
                f"{limits.max_duration_s:.0f} s: trim it before sending"
            )
        decoded = _decode_frames(
            container, stream, limits, _goals(timeline, max_samples, sampling), gap, pixel_format
        )
        codec = ctx.name
        container_name = container.format.name

    if decoded.total == 0:
        raise InvalidInput(
            "the video has no decodable frames: the file is empty, truncated or damaged"
        )
    total = decoded.total
    if declared_frames and total < 0.9 * declared_frames - 1:
        raise InvalidInput(
            f"the video is truncated: its header declares {declared_frames} frames but only "
            f"{total} could be decoded; send the complete file"
        )
    # The decoded timeline (presentation times), not frames / nominal rate: a
    # variable-frame-rate video covers its header's duration with any count.
    duration = decoded.end_s
    if header_duration > 1.0 and duration < 0.8 * header_duration - 0.25:
        raise InvalidInput(
            f"the video is truncated: its header says {header_duration:.2f} s but only "
            f"{duration:.2f} s could be decoded; send the complete file"
        )
    fps = total / duration if duration > 0 else fps_hint
    return DecodedVideo(
        frames=decoded.frames,
        timestamps=decoded.times,
        indices=decoded.indices,
        total_frames=total,
        fps=fps,
        duration_s=duration,
        width=decoded.width,
        height=decoded.height,
        container=container_name,
        codec=codec,
    )


@dataclass(frozen=True)
class _Decoded:
    frames: np.ndarray
    times: np.ndarray
    indices: np.ndarray
    total: int
    end_s: float
    width: int
    height: int


def _abandon(stream: av.video.stream.VideoStream) -> None:
    """Reset a decoder left mid-stream, before its container closes.

    Leaving ``container.decode`` early finalizes PyAV's decode generator while
    the container is open; with frame threading (thread_type AUTO) the next
    container opened in the process then hangs, unless the decoder's buffers
    are flushed first (found by test: every refusal mid-stream goes here).
    """
    with contextlib.suppress(av.FFmpegError, ValueError, OSError):
        stream.codec_context.flush_buffers()


def _decode_frames(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    limits: VideoLimits,
    goals: np.ndarray,
    gap: float,
    pixel_format: str,
) -> _Decoded:
    """Decode every frame, checking each; keep and convert only the one nearest each goal.

    ``gap`` is the typical time between frames, for frames without a usable
    timestamp (it follows the stream as frames come).
    """
    sampler = _GoalSampler(goals)
    width = height = 0
    origin: float | None = None
    prev_t = 0.0
    last_duration = 0.0
    pixels_seen = 0
    index = -1
    try:
        for index, frame in enumerate(container.decode(stream)):
            # Every frame, not just the first: a stream can change size mid-way.
            _check_size(frame.width, frame.height, limits, f" (frame {index})" if index else "")
            pixels_seen += frame.width * frame.height
            if pixels_seen > limits.max_decoded_pixels:
                raise InvalidInput(
                    f"the video decodes to more than {limits.max_decoded_pixels} pixels in "
                    "all frames together (the limit): send fewer or smaller frames"
                )
            if index >= limits.max_frames:
                raise InvalidInput(
                    f"the video has more than {limits.max_frames} frames: trim it or lower "
                    "its frame rate"
                )
            if index == 0:
                width, height = frame.width, frame.height
            raw = frame.time if frame.pts is not None else None
            if raw is None or not math.isfinite(raw):
                t = prev_t + gap if index else 0.0
            else:
                if origin is None:  # the first timestamped frame sets the origin
                    origin = raw - (prev_t + gap if index else 0.0)
                t = raw - origin
                if index and t <= prev_t:
                    # Timestamps that go back (concatenated streams) or repeat:
                    # keep the timeline increasing by the typical step.
                    t = prev_t + gap
                elif index:
                    gap = t - prev_t
            if t > limits.max_duration_s:
                raise InvalidInput(
                    f"the video lasts more than {limits.max_duration_s:.0f} s: trim it "
                    "before sending"
                )
            dur, tb = frame.duration, frame.time_base
            last_duration = float(dur * tb) if dur and tb is not None else 0.0
            sampler.offer(_Candidate(index, t, frame))
            prev_t = t
    except InvalidInput:
        _abandon(stream)
        raise
    except (av.FFmpegError, ValueError, OSError, MemoryError) as exc:
        _abandon(stream)
        ctx = stream.codec_context
        if ctx.width > limits.max_side_px or ctx.height > limits.max_side_px:
            # The decoder refused a picture past max_pixels: say which limit.
            _check_size(ctx.width, ctx.height, limits, f" (frame {index + 1})")
        if index < 0:
            raise InvalidInput(
                "the video stream could not be decoded (damaged or unsupported codec): "
                "send an mp4 (H.264), webm (VP9) or gif file"
            ) from exc
        raise InvalidInput(
            f"the video is damaged or truncated: decoding failed after {index} frames; "
            "send the complete file"
        ) from exc
    except BaseException:
        _abandon(stream)
        raise
    total = index + 1
    if total == 0:
        return _Decoded(np.zeros((0,)), np.zeros(0), np.zeros(0, np.int64), 0, 0.0, 0, 0)
    picked = [(c, c.frame) for c in sampler.result() if c.frame is not None]
    orient, swapped = _orientation(picked[0][1])
    try:
        pixels = [orient(_to_pixels(f, pixel_format, width, height)) for _, f in picked]
    except (av.FFmpegError, ValueError, MemoryError) as exc:
        raise InvalidInput(
            "the video's frames could not be converted (damaged or unsupported pixel format)"
        ) from exc
    times = np.array([c.time_s for c, _ in picked], dtype=np.float64)
    # Where the last frame ends: its own duration when the container gives a
    # plausible one, else the step before it.
    tail = last_duration if 0 < last_duration <= max(1.0, 10 * gap) else gap
    end_s = prev_t + tail
    shown_w, shown_h = (height, width) if swapped else (width, height)
    return _Decoded(
        frames=np.ascontiguousarray(np.stack(pixels)),
        times=times,
        indices=np.array([c.index for c, _ in picked], dtype=np.int64),
        total=total,
        end_s=float(end_s),
        width=shown_w,
        height=shown_h,
    )
