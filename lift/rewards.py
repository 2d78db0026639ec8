"""Drop-in rewards for RL trainers: generated videos in, one float per video out.

    from lift.rewards import CriticReward
    reward = CriticReward("localhost:50051", dimensions=["motion_smoothness", "video_fidelity"])
    rewards, info = reward(videos, prompts)   # videos: (B, T, C, H, W) in [-1, 1], say

Part of the light client install: it imports numpy and the critic client only (no
torch, no av). What it accepts and what it does:

* **Videos**: a 5-D batch, as a numpy array or anything with ``.detach().cpu().numpy()``
  (a torch tensor, read without importing torch), or a list of 4-D videos (lengths and
  sizes may differ). uint8 ``(B, T, H, W, 3)``, or float ``(B, T, C, H, W)`` /
  ``(B, C, T, H, W)`` / ``(B, T, H, W, C)`` with ``C == 3`` in [0, 1] or [-1, 1] (what
  diffusers pipelines return). The layout is the one whose channel axis has size 3;
  a shape where several axes have size 3 is refused unless ``layout=`` names it. The
  value range is detected over the whole batch: any value below 0 means [-1, 1];
  ``value_range=`` fixes it. Values outside both ranges, NaN and other dtypes are
  refused with a sentence saying what to send.
* **Encoding**: each video is encoded once, in pure numpy, as a YUV4MPEG2 (``.y4m``)
  stream: raw full-range BT.601 YUV, 4:2:0 by default (``chroma="444"`` keeps full
  colour). The critic's FFmpeg decoder reads it exactly (luma to within rounding;
  4:2:0 averages colour over 2x2 pixels). It is uncompressed: a 49-frame 480x720 video
  is 25.4 MB, within the critic's default ``max_video_bytes`` (64 MiB); a video over
  the critic's limit is a failed item whose error gives its size and the limit.
* **Scoring**: the batch goes to the critic's batch ``Score`` RPC (``POST /v1/scores``
  over HTTP). One call when it fits: at most the critic's ``max_batch_items`` items and
  ``max_request_bytes`` of video (default: the client's 80 MiB message limit less 1 MiB,
  which a critic with default settings accepts: three 49x480x720 videos). A larger batch
  is split in order into as few calls as those limits allow, and a request the critic
  refuses for its size (a smaller ``max_message_bytes``) is split in halves and sent
  again; ``info["calls"]`` counts the calls.
* **Rewards**: without ``dimensions``/``weights``, the critic's own reward (Eq. 2 for
  label critics). With them, the weighted mean of those dimensions' scores (each the
  critic's [0, 1] score of the dimension). ``normalize``: None (as is), "batch"
  (z-score over the batch's successful items) or "rank" (rank among the successful
  items, scaled to [0, 1], ties averaged).
* **Failures**: an item the critic refuses (a prompt over its limit, a video it cannot
  read, a dimension it left unassessed) gets ``fallback`` in the returned rewards
  (after normalization, which uses the successful items only) and is listed in
  ``info["errors"]``; ``info["failed"]`` marks it. The default fallback 0.0 is the
  lowest reward a critic gives and, with normalization, a zero advantage; pass
  ``float("nan")`` to mask failed items yourself. A failed *call* (the critic is down,
  the deadline passed) raises :class:`~lift.clients.critic.CriticError` unless
  ``raise_on_call_error=False``: every item would otherwise silently get the fallback.

``info`` holds, per video: ``dimensions`` (name -> scores, None where not assessed),
``critic_reward``, ``raw_rewards`` (before normalization), ``frames_sent``,
``frames_analysed`` and ``fps`` (as the critic decoded it); and ``scorer`` (backend,
name, version of the model that judged: compare it across steps to detect drift),
``errors`` (``{"index", "code", "message"}``: the critic's gRPC status name, or
"UNASSESSED" when a dimension the reward needs was not judged), ``failed`` and ``calls``.

Adapters: :meth:`CriticReward.ddpo` gives TRL's DDPO reward function
``(images, prompts, prompt_metadata) -> (rewards, metadata)``; :meth:`CriticReward.flow_grpo`
a Flow-GRPO ``multi_score``-style function ``(images, prompts, metadata, ref_images=None,
only_strict=True) -> ({name: scores, ..., "avg": rewards}, {})``. :class:`AsyncCriticReward`
is the asyncio variant (``await reward(videos, prompts)``).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Protocol

import numpy as np

from lift.clients.base import Credentials
from lift.clients.critic import AsyncCriticClient, CriticClient, CriticError, Video
from lift.critique import Critique, Dimension


class ScoringClient(Protocol):
    """What :class:`CriticReward` needs of a client: :class:`CriticClient` has it."""

    def info(self) -> dict[str, Any]: ...

    def score(self, items: Sequence[tuple[Video, str]]) -> list[Critique | CriticError]: ...


LAYOUTS = ("BTHWC", "BTCHW", "BCTHW")
"""Axis orders of a 5-D batch: B batch, T time, C channels (RGB), H height, W width."""
NORMALIZE = (None, "batch", "rank")
CHROMA = ("420", "444")

# Full-range BT.601 (JPEG) RGB -> YUV; FFmpeg's inverse is the default for untagged video.
_RGB_TO_YUV = np.array(
    [
        [0.299, 0.587, 0.114],
        [-0.168736, -0.331264, 0.5],
        [0.5, -0.418688, -0.081312],
    ],
    dtype=np.float32,
)


# ---------------------------------------------------------------- frames


def _to_numpy(x: Any, what: str) -> np.ndarray:
    """A numpy array from an array, a torch tensor (duck-typed) or a nested list."""
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        t = x.detach().cpu()
        if "bfloat16" in str(getattr(t, "dtype", "")):  # numpy has no bfloat16
            t = t.float()
        return np.asarray(t.numpy())
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} is not an array or tensor: {exc}") from None


def _channel_last(video: np.ndarray, layout: str) -> np.ndarray:
    """One video from a batch of ``layout`` (axes without B) as (T, H, W, C)."""
    if layout == "BTHWC":
        return video
    if layout == "BTCHW":
        return video.transpose(0, 2, 3, 1)
    return video.transpose(1, 2, 3, 0)  # BCTHW


def detect_layout(shape: Sequence[int], layout: str | None = None) -> str:
    """The layout of a 5-D batch of ``shape``: the one whose channel axis has size 3.

    ``layout`` (one of :data:`LAYOUTS`) is checked against the shape instead.
    ValueError for a shape that is not 5-D, has no axis of size 3 where a layout
    wants channels, or fits several layouts (then pass ``layout=``).
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 5:
        hint = (
            " (one video? add a batch axis: videos[None])"
            if len(shape) == 4
            else " (images are not videos: the critic judges frames over time)"
            if len(shape) == 3
            else ""
        )
        raise ValueError(
            f"videos must be a 5-D batch (B, T, H, W, 3), (B, T, C, H, W) or (B, C, T, H, W), "
            f"or a list of 4-D videos; got shape {shape}{hint}"
        )
    channel_axis = {"BTHWC": 4, "BTCHW": 2, "BCTHW": 1}
    if layout is not None:
        if layout not in channel_axis:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        if shape[channel_axis[layout]] != 3:
            raise ValueError(
                f"layout {layout} puts the RGB channels on axis {channel_axis[layout]}, "
                f"which has size {shape[channel_axis[layout]]} in shape {shape}; "
                "videos must have 3 (RGB) channels"
            )
        return layout
    fits = [name for name, axis in channel_axis.items() if shape[axis] == 3]
    if not fits:
        raise ValueError(
            f"no axis of size 3 (RGB) where a layout has its channels in shape {shape}: "
            f"send (B, T, H, W, 3), (B, T, 3, H, W) or (B, 3, T, H, W) RGB videos"
        )
    if len(fits) > 1:
        raise ValueError(
            f"shape {shape} is ambiguous: it fits layouts {fits} (several axes have size 3); "
            f"pass layout= one of {fits}"
        )
    return fits[0]


def _range_of(values: Sequence[np.ndarray], value_range: tuple[float, float] | None) -> float:
    """The low end of the float videos' value range: -1.0 or 0.0 (checked)."""
    filled = [v for v in values if v.size]
    if not filled:
        return 0.0
    lo = min(float(np.min(v)) for v in filled)
    hi = max(float(np.max(v)) for v in filled)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        bad = [i for i, v in enumerate(values) if v.size and not np.isfinite(v).all()]
        which = f"videos {', '.join(map(str, bad))} of the batch hold"
        if len(bad) == 1:
            which = f"video {bad[0]} of the batch holds"
        raise ValueError(f"{which} NaN or infinite values: send finite pixel values")
    if value_range is not None:
        if tuple(value_range) not in ((0.0, 1.0), (-1.0, 1.0)):
            raise ValueError(f"value_range must be (0, 1) or (-1, 1), got {value_range!r}")
        low = float(value_range[0])
    else:
        low = -1.0 if lo < 0 else 0.0
    tol = 1e-3
    if lo < low - tol or hi > 1.0 + tol:
        raise ValueError(
            f"float videos must hold values in [0, 1] or [-1, 1]; these span [{lo:.4g}, "
            f"{hi:.4g}]"
            + (" (pixel values 0..255? send uint8, or divide by 255)" if hi > 2 else "")
        )
    return low


def to_frames(
    videos: Any, layout: str | None = None, value_range: tuple[float, float] | None = None
) -> list[np.ndarray]:
    """Each video of a batch as (T, H, W, 3) uint8 RGB frames.

    ``videos``: a 5-D array or tensor, or a list of 4-D ones (each without the batch
    axis, in the same layout). See the module docstring for what is accepted.
    """
    if isinstance(videos, list | tuple):
        if not videos:
            raise ValueError("the batch is empty: send at least one video")
        arrays = [_to_numpy(v, f"video {i}") for i, v in enumerate(videos)]
        for i, a in enumerate(arrays):
            if a.ndim != 4:
                raise ValueError(
                    f"video {i} of the list has shape {a.shape}; each video must be 4-D "
                    "(T, H, W, 3), (T, C, H, W) or (C, T, H, W)"
                )
        layouts = {detect_layout((1, *a.shape), layout) for a in arrays}
        if len(layouts) > 1:
            raise ValueError(f"the videos of the list come in several layouts {sorted(layouts)}")
        found = layouts.pop()
    else:
        batch = _to_numpy(videos, "videos")
        found = detect_layout(batch.shape, layout)
        if batch.shape[0] == 0:
            raise ValueError("the batch is empty: send at least one video")
        arrays = list(batch)
    dtypes = {a.dtype for a in arrays}
    if len(dtypes) > 1:
        raise ValueError(f"the videos mix dtypes {sorted(map(str, dtypes))}: send one dtype")
    dtype = dtypes.pop()
    frames = [_channel_last(a, found) for a in arrays]
    if dtype == np.uint8:
        if value_range is not None:
            raise ValueError("value_range is for float videos; uint8 videos are 0..255")
        return [np.ascontiguousarray(f) for f in frames]
    if not np.issubdtype(dtype, np.floating):
        raise ValueError(f"videos must be uint8 (0..255) or float ([0, 1] or [-1, 1]); got {dtype}")
    low = _range_of(frames, value_range)
    out = []
    for f in frames:
        x = f.astype(np.float32)
        if low < 0:
            x = (x + 1.0) * 0.5
        out.append(np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8))
    return out


# ---------------------------------------------------------------- encoding


def y4m_size(frames: int, height: int, width: int, fps: float, chroma: str = "420") -> int:
    """The size in bytes of :func:`encode_y4m`'s output, computed without encoding."""
    return len(_y4m_header(height, width, fps, chroma)) + frames * (
        6 + height * width + 2 * _chroma_pixels(height, width, chroma)
    )


def _chroma_pixels(height: int, width: int, chroma: str) -> int:
    return height * width if chroma == "444" else ((height + 1) // 2) * ((width + 1) // 2)


def _y4m_header(height: int, width: int, fps: float, chroma: str) -> bytes:
    rate = Fraction(fps).limit_denominator(1001)
    tag = "C444" if chroma == "444" else "C420jpeg"
    return (
        f"YUV4MPEG2 W{width} H{height} F{rate.numerator}:{rate.denominator} Ip A1:1 {tag} "
        "XCOLORRANGE=FULL\n"
    ).encode()


def encode_y4m(frames: np.ndarray, fps: float, chroma: str = "420") -> bytes:
    """Encode (T, H, W, 3) uint8 RGB ``frames`` as a YUV4MPEG2 stream, in numpy only.

    Full-range BT.601 YUV, tagged so; ``chroma`` "420" averages colour over 2x2 pixels
    (an odd last row or column over itself), "444" keeps it per pixel.
    """
    if chroma not in CHROMA:
        raise ValueError(f"chroma must be one of {CHROMA}, got {chroma!r}")
    if not (isinstance(fps, int | float) and math.isfinite(fps) and 0 < fps <= 1000):
        raise ValueError(f"fps must be a number in (0, 1000], got {fps!r}")
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    t, h, w, _ = frames.shape
    if t == 0 or h == 0 or w == 0:
        raise ValueError(f"the video is empty (shape {frames.shape}): send at least one frame")
    parts = [_y4m_header(h, w, fps, chroma)]
    m = _RGB_TO_YUV
    for frame in frames:
        rgb = frame.astype(np.float32)
        r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
        y = m[0, 0] * r + m[0, 1] * g + m[0, 2] * b
        if chroma == "420":  # the conversion is linear: average RGB first, 4x less work
            r, g, b = _half(r), _half(g), _half(b)
        u = m[1, 0] * r + m[1, 1] * g + m[1, 2] * b + 128.0
        v = m[2, 0] * r + m[2, 1] * g + m[2, 2] * b + 128.0
        parts.append(b"FRAME\n")
        for plane in (y, u, v):
            parts.append(np.clip(np.rint(plane), 0, 255).astype(np.uint8).tobytes())
    return b"".join(parts)


def _half(plane: np.ndarray) -> np.ndarray:
    """Mean over 2x2 blocks; an odd last row/column is repeated."""
    h, w = plane.shape
    if h % 2:
        plane = np.concatenate([plane, plane[-1:]], axis=0)
    if w % 2:
        plane = np.concatenate([plane, plane[:, -1:]], axis=1)
    p = plane.reshape(plane.shape[0] // 2, 2, plane.shape[1] // 2, 2)
    return (p[:, 0, :, 0] + p[:, 0, :, 1] + p[:, 1, :, 0] + p[:, 1, :, 1]) * 0.25


# ---------------------------------------------------------------- rewards

_REQUEST_BYTES = CriticClient.max_message_bytes - 2**20
"""Video bytes one Score request carries by default: the client's message limit, less room."""


def _too_large(exc: CriticError, group: list[int]) -> bool:
    """Whether the critic refused a request of several items for its size (then split it)."""
    message = exc.message
    return len(group) > 1 and (
        exc.code == "413"  # an HTTP refusal without a JSON body
        or "larger than max" in message  # gRPC: the message is over the server's limit
        or ("request body is" in message and "limit" in message)  # the HTTP front
    )


def _halves(group: list[int]) -> list[list[int]]:
    mid = len(group) // 2
    return [group[:mid], group[mid:]]


@dataclass
class _Batch:
    """What one call prepares: the encoded items, and the errors found before sending."""

    n: int
    data: list[bytes | None]
    prompts: list[str]
    frames_sent: list[int]
    errors: dict[int, tuple[str, str]] = field(default_factory=dict)


def _check_prompts(prompts: Any, n: int) -> list[str]:
    if isinstance(prompts, str):
        raise ValueError(
            "prompts must be a list with one string per video, not one string "
            "(for the same prompt everywhere: [prompt] * len(videos))"
        )
    try:
        out = list(prompts)
    except TypeError:
        raise ValueError(
            f"prompts must be a list of strings, got {type(prompts).__name__}"
        ) from None
    if len(out) != n:
        raise ValueError(f"there are {n} videos and {len(out)} prompts: send one prompt per video")
    for i, p in enumerate(out):
        if not isinstance(p, str):
            raise ValueError(f"prompt {i} is a {type(p).__name__}, not a string")
    return out


def _weights(
    dimensions: Sequence[str] | None, weights: Mapping[str, float] | Sequence[float] | None
) -> dict[str, float] | None:
    """{dimension: weight} (None: the critic's reward); ValueError naming what is wrong."""
    if dimensions is None and weights is None:
        return None
    if isinstance(dimensions, str):
        dimensions = [dimensions]
    if isinstance(weights, Mapping):
        if dimensions is not None and set(dimensions) != set(weights):
            raise ValueError(
                f"weights name {sorted(weights)} but dimensions are {sorted(dimensions)}: "
                "give the same names (or only weights)"
            )
        out = {str(k): v for k, v in weights.items()}
    else:
        dims = list(dimensions or ())
        if not dims:
            raise ValueError("weights as a list need dimensions= naming what they weigh")
        ws = [1.0] * len(dims) if weights is None else list(weights)
        if len(ws) != len(dims):
            raise ValueError(f"{len(dims)} dimensions and {len(ws)} weights: give one weight each")
        if len(set(dims)) != len(dims):
            raise ValueError(f"dimensions {dims} name one twice")
        out = dict(zip(dims, ws, strict=True))
    if not out:
        raise ValueError("dimensions is empty: name at least one, or pass None")
    known = [d.value for d in Dimension]
    for name, w in out.items():
        if name not in known:
            raise ValueError(f"unknown dimension {name!r}; the critic's dimensions are {known}")
        if not (isinstance(w, int | float) and math.isfinite(w) and w >= 0):
            raise ValueError(f"the weight of {name} must be a finite number >= 0, got {w!r}")
    if sum(out.values()) <= 0:
        raise ValueError("the weights sum to 0: give at least one a positive weight")
    return {k: float(v) for k, v in out.items()}


def normalize_rewards(raw: np.ndarray, ok: np.ndarray, how: str | None) -> np.ndarray:
    """``raw`` normalized over the successful items (``ok``); failed items are left as is."""
    out = raw.astype(np.float64).copy()
    if how is None or not ok.any():
        return out
    vals = raw[ok].astype(np.float64)
    if how == "batch":
        std = float(vals.std())
        out[ok] = (vals - vals.mean()) / std if std > 1e-12 else 0.0
    elif how == "rank":
        if vals.size == 1:
            out[ok] = 0.5
        else:
            order = np.argsort(vals, kind="stable")
            ranks = np.empty(vals.size)
            ranks[order] = np.arange(vals.size, dtype=np.float64)
            for v in np.unique(vals):  # ties share their mean rank
                same = vals == v
                ranks[same] = ranks[same].mean()
            out[ok] = ranks / (vals.size - 1)
    else:
        raise ValueError(f"normalize must be one of {NORMALIZE}, got {how!r}")
    return out


class _RewardBase:
    """What the blocking and asyncio rewards share: preparing a batch and reading results."""

    def __init__(
        self,
        dimensions: Sequence[str] | str | None = None,
        weights: Mapping[str, float] | Sequence[float] | None = None,
        normalize: str | None = None,
        fallback: float = 0.0,
        fps: float = 8.0,
        layout: str | None = None,
        value_range: tuple[float, float] | None = None,
        chroma: str = "420",
        max_request_bytes: int | None = None,
        raise_on_call_error: bool = True,
    ) -> None:
        if normalize not in NORMALIZE:
            raise ValueError(f"normalize must be one of {NORMALIZE}, got {normalize!r}")
        if layout is not None and layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        if chroma not in CHROMA:
            raise ValueError(f"chroma must be one of {CHROMA}, got {chroma!r}")
        if not (isinstance(fps, int | float) and math.isfinite(fps) and 0 < fps <= 1000):
            raise ValueError(f"fps must be a number in (0, 1000], got {fps!r}")
        if not isinstance(fallback, int | float):
            raise ValueError(f"fallback must be a float (NaN allowed), got {fallback!r}")
        if max_request_bytes is not None and max_request_bytes < 1:
            raise ValueError("max_request_bytes must be positive")
        self.weights = _weights(
            [dimensions] if isinstance(dimensions, str) else dimensions, weights
        )
        self.normalize = normalize
        self.fallback = float(fallback)
        self.fps = float(fps)
        self.layout = layout
        self.value_range = value_range
        self.chroma = chroma
        self.max_request_bytes = max_request_bytes
        self.raise_on_call_error = raise_on_call_error
        self._limits: dict[str, Any] | None = None
        self._lock = threading.Lock()

    # -- the critic's limits ---------------------------------------------------
    def _check_info(self, info: dict[str, Any]) -> dict[str, Any]:
        if self.weights is not None:
            assessed = set(info.get("assessed_dimensions", ()))
            missing = sorted(set(self.weights) - assessed)
            if missing:
                raise ValueError(
                    f"the critic does not assess {missing} (it assesses {sorted(assessed)}); "
                    "choose dimensions it assesses"
                )
        return dict(info["limits"])

    # -- before the call ---------------------------------------------------------
    def _prepare(self, videos: Any, prompts: Any, limits: dict[str, Any]) -> _Batch:
        frames = to_frames(videos, self.layout, self.value_range)
        texts = _check_prompts(prompts, len(frames))
        batch = _Batch(len(frames), [None] * len(frames), texts, [int(f.shape[0]) for f in frames])
        max_bytes = int(limits.get("max_video_bytes") or 0)
        for i, f in enumerate(frames):
            t, h, w, _ = f.shape
            if t == 0 or h == 0 or w == 0:
                batch.errors[i] = ("INVALID_ARGUMENT", f"video {i} is empty (shape {f.shape})")
                continue
            size = y4m_size(t, h, w, self.fps, self.chroma)
            if max_bytes and size > max_bytes:
                batch.errors[i] = (
                    "INVALID_ARGUMENT",
                    f"video {i} ({t} frames of {w}x{h}) is {size} bytes as uncompressed y4m; the "
                    f"critic's max_video_bytes is {max_bytes}: send fewer or smaller frames, "
                    "use chroma='420', or raise the critic's max_video_bytes",
                )
                continue
            batch.data[i] = encode_y4m(f, self.fps, self.chroma)
        return batch

    def _groups(self, batch: _Batch, limits: dict[str, Any]) -> list[list[int]]:
        """Indices of the items to send, in order, split into requests within the limits."""
        max_items = int(limits.get("max_batch_items") or 64)
        budget = self.max_request_bytes or _REQUEST_BYTES
        groups: list[list[int]] = []
        current: list[int] = []
        used = 0
        for i, data in enumerate(batch.data):
            if data is None:
                continue
            if current and (len(current) >= max_items or used + len(data) > budget):
                groups.append(current)
                current, used = [], 0
            current.append(i)
            used += len(data)
        if current:
            groups.append(current)
        return groups

    # -- after the call ------------------------------------------------------------
    def _finish(
        self, batch: _Batch, results: dict[int, Critique | CriticError], calls: int
    ) -> tuple[np.ndarray, dict[str, Any]]:
        n = batch.n
        raw = np.full(n, np.nan)
        dims: dict[str, list[float | None]] = {d.value: [None] * n for d in Dimension}
        critic_reward: list[float | None] = [None] * n
        frames_analysed: list[int | None] = [None] * n
        fps: list[float | None] = [None] * n
        scorer: dict[str, str] | None = None
        errors = dict(batch.errors)
        for i, r in results.items():
            if isinstance(r, CriticError):
                errors[i] = (r.code, r.message)
                continue
            if scorer is None:
                scorer = {
                    "backend": r.model.backend,
                    "name": r.model.name,
                    "version": r.model.version,
                }
            critic_reward[i] = r.reward
            frames_analysed[i] = r.video.frames_analysed
            fps[i] = r.video.fps
            for d in r.dimensions:
                dims[d.name.value][i] = d.score
            value, why = self._reward_of(r)
            if value is None:
                errors[i] = ("UNASSESSED", why)
            else:
                raw[i] = value
        failed = np.zeros(n, dtype=bool)
        for i in errors:
            failed[i] = True
        raw_out = raw.copy()
        rewards = normalize_rewards(np.where(failed, 0.0, raw), ~failed, self.normalize)
        rewards[failed] = self.fallback
        info: dict[str, Any] = {
            "dimensions": dims,
            "critic_reward": critic_reward,
            "raw_rewards": [None if math.isnan(x) else float(x) for x in raw_out],
            "scorer": scorer,
            "scorer_version": None if scorer is None else scorer["version"],
            "frames_sent": batch.frames_sent,
            "frames_analysed": frames_analysed,
            "fps": fps,
            "fps_sent": self.fps,
            "errors": [
                {"index": i, "code": code, "message": msg}
                for i, (code, msg) in sorted(errors.items())
            ],
            "failed": failed.tolist(),
            "calls": calls,
            "normalize": self.normalize,
            "fallback": self.fallback,
        }
        return rewards.astype(np.float32), info

    def _reward_of(self, c: Critique) -> tuple[float | None, str]:
        if self.weights is None:
            if c.reward is None:
                return None, "the critic judged no dimension of this video (it has no reward)"
            return float(c.reward), ""
        total = wsum = 0.0
        for name, w in self.weights.items():
            try:
                d = c.dimension(name)
            except KeyError:
                return None, f"the critic's answer has no {name} dimension"
            if d.score is None:
                reason = d.reasons[0] if d.reasons else "no reason given"
                return None, f"{name} was not assessed: {reason}"
            total += w * float(d.score)
            wsum += w
        return total / wsum, ""

    @staticmethod
    def _items(batch: _Batch, group: list[int]) -> list[tuple[bytes, str]]:
        """The (video, prompt) items of one Score call."""
        return [(batch.data[i] or b"", batch.prompts[i]) for i in group]

    def _refused(
        self,
        batch: _Batch,
        group: list[int],
        exc: CriticError,
        pending: list[list[int]],
        results: dict[int, Any],
    ) -> None:
        """A Score call refused: too large -> its halves go next; otherwise its items fail
        (or the error is raised, with ``raise_on_call_error``)."""
        if _too_large(exc, group):
            pending[:0] = _halves(group)
            return
        if self.raise_on_call_error:
            raise exc
        results.update({i: exc for i in group})

    # -- adapters ----------------------------------------------------------------------
    def _names(self) -> list[str]:
        return list(self.weights) if self.weights is not None else [d.value for d in Dimension]

    def _flow_dict(self, rewards: np.ndarray, info: dict[str, Any]) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {}
        for name in self._names():
            out[name] = [math.nan if v is None else float(v) for v in info["dimensions"][name]]
        out["lift"] = [float(x) for x in rewards]
        out["avg"] = [float(x) for x in rewards]
        return out


class CriticReward(_RewardBase):
    """A reward function backed by a critic service: ``rewards, info = reward(videos, prompts)``.

    ``server``: "host:port" (gRPC), "http(s)://host:port", or a :class:`CriticClient`
    (kept open; closing it is yours). ``timeout`` is each Score call's deadline, in
    seconds; ``token``/``credentials`` as every client takes them. The rest: see the
    module docstring. Safe to call from several threads (TRL's async reward mode).
    """

    def __init__(
        self,
        server: str | ScoringClient,
        dimensions: Sequence[str] | str | None = None,
        weights: Mapping[str, float] | Sequence[float] | None = None,
        normalize: str | None = None,
        fallback: float = 0.0,
        fps: float = 8.0,
        timeout: float = 300.0,
        token: str | None = None,
        credentials: Credentials | None = None,
        layout: str | None = None,
        value_range: tuple[float, float] | None = None,
        chroma: str = "420",
        max_request_bytes: int | None = None,
        raise_on_call_error: bool = True,
    ) -> None:
        super().__init__(
            dimensions,
            weights,
            normalize,
            fallback,
            fps,
            layout,
            value_range,
            chroma,
            max_request_bytes,
            raise_on_call_error,
        )
        self._own: CriticClient | None = None
        if isinstance(server, str):
            self._own = CriticClient(
                server, timeout_s=timeout, credentials=credentials, token=token
            )
            self.client: ScoringClient = self._own
        else:
            self.client = server

    def close(self) -> None:
        """Close the connection (when this reward opened it)."""
        if self._own is not None:
            self._own.close()

    def __enter__(self) -> CriticReward:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def limits(self) -> dict[str, Any]:
        """The critic's limits (asked once, on first use), after checking the dimensions."""
        with self._lock:
            if self._limits is None:
                self._limits = self._check_info(self.client.info())
            return self._limits

    def __call__(
        self, videos: Any, prompts: Sequence[str], metadata: Any = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """One float32 reward per video, and ``info`` (see the module docstring).

        ``metadata`` (TRL's prompt metadata, Flow-GRPO's) is accepted and not used.
        """
        limits = self.limits()
        batch = self._prepare(videos, prompts, limits)
        results: dict[int, Any] = {}
        pending = self._groups(batch, limits)
        calls = 0
        while pending:
            group = pending.pop(0)
            calls += 1
            try:
                answers = self.client.score(self._items(batch, group))
            except CriticError as exc:
                self._refused(batch, group, exc, pending, results)
                continue
            results.update(zip(group, answers, strict=True))
        return self._finish(batch, results, calls)

    def ddpo(self) -> Callable[[Any, Any, Any], tuple[np.ndarray, dict[str, Any]]]:
        """TRL's DDPO reward function: ``(images, prompts, prompt_metadata) -> (rewards, info)``.

        ``images`` is the pipeline's batch of videos (a tensor); ``rewards`` a float32
        array TRL turns into a tensor; ``info`` becomes TRL's reward metadata.
        """

        def reward_fn(
            images: Any, prompts: Any, prompt_metadata: Any
        ) -> tuple[np.ndarray, dict[str, Any]]:
            return self(images, prompts, prompt_metadata)

        return reward_fn

    def flow_grpo(self) -> Callable[..., tuple[dict[str, list[float]], dict[str, Any]]]:
        """A Flow-GRPO ``multi_score``-style function.

        ``(images, prompts, metadata, ref_images=None, only_strict=True) -> (scores, {})``
        where ``scores`` maps each dimension (NaN where not assessed) and "lift" to one
        float per video, and "avg" to the rewards (what Flow-GRPO trains on);
        ``ref_images`` and ``only_strict`` are accepted and unused. The second dict is
        ``info``.
        """

        def reward_fn(
            images: Any,
            prompts: Any,
            metadata: Any,
            ref_images: Any = None,
            only_strict: bool = True,
        ) -> tuple[dict[str, list[float]], dict[str, Any]]:
            rewards, info = self(images, prompts, metadata)
            return self._flow_dict(rewards, info), info

        return reward_fn


class AsyncCriticReward(_RewardBase):
    """The asyncio :class:`CriticReward`: ``rewards, info = await reward(videos, prompts)``.

    ``server`` is "host:port" (gRPC) or an :class:`AsyncCriticClient`. Encoding runs in
    the calling thread (numpy; it does not await).
    """

    def __init__(
        self,
        server: str | AsyncCriticClient,
        dimensions: Sequence[str] | str | None = None,
        weights: Mapping[str, float] | Sequence[float] | None = None,
        normalize: str | None = None,
        fallback: float = 0.0,
        fps: float = 8.0,
        timeout: float = 300.0,
        token: str | None = None,
        credentials: Credentials | None = None,
        layout: str | None = None,
        value_range: tuple[float, float] | None = None,
        chroma: str = "420",
        max_request_bytes: int | None = None,
        raise_on_call_error: bool = True,
    ) -> None:
        super().__init__(
            dimensions,
            weights,
            normalize,
            fallback,
            fps,
            layout,
            value_range,
            chroma,
            max_request_bytes,
            raise_on_call_error,
        )
        if isinstance(server, str) and server.startswith(("http://", "https://")):
            raise ValueError(
                "AsyncCriticReward speaks gRPC (host:port); for the HTTP front use CriticReward"
            )
        if isinstance(server, str):
            self.client = AsyncCriticClient(
                server, timeout_s=timeout, credentials=credentials, token=token
            )
            self._owned = True
        else:
            self.client = server
            self._owned = False

    async def close(self) -> None:
        """Close the channel (when this reward opened it)."""
        if self._owned:
            await self.client.close()

    async def __aenter__(self) -> AsyncCriticReward:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def limits(self) -> dict[str, Any]:
        """The critic's limits (asked once), after checking the dimensions."""
        if self._limits is None:
            self._limits = self._check_info(await self.client.info())
        return self._limits

    async def __call__(
        self, videos: Any, prompts: Sequence[str], metadata: Any = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """One float32 reward per video, and ``info``."""
        limits = await self.limits()
        batch = self._prepare(videos, prompts, limits)
        results: dict[int, Any] = {}
        pending = self._groups(batch, limits)
        calls = 0
        while pending:
            group = pending.pop(0)
            calls += 1
            try:
                answers = await self.client.score(self._items(batch, group))
            except CriticError as exc:
                self._refused(batch, group, exc, pending, results)
                continue
            results.update(zip(group, answers, strict=True))
        return self._finish(batch, results, calls)


__all__ = [
    "LAYOUTS",
    "AsyncCriticReward",
    "CriticReward",
    "detect_layout",
    "encode_y4m",
    "normalize_rewards",
    "to_frames",
    "y4m_size",
]
