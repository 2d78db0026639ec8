"""What a run trains on: prompts, real clips and pre-scored (offline) videos.

Videos are read with the suite's decoder and brought to the training shape
(frames, height, width) here, once, so the training step only sees uint8 arrays
of one shape: first ``frames`` frames (the last repeated if the clip is shorter),
centre-cropped to the aspect ratio, then resized with area averaging.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from lift.errors import InvalidInput, LiftError
from lift.reward import RewardMap, labels_reward
from lift.services.trainer.config import RunConfig
from lift.video.decode import VideoLimits, decode_video

VIDEO_SUFFIXES = (".mp4", ".webm", ".mkv", ".mov", ".avi", ".gif")
MAX_CLIPS = 100_000
_LIMITS = VideoLimits()


@dataclass(frozen=True)
class Shape:
    """The training shape of every clip."""

    frames: int
    height: int
    width: int


@dataclass(frozen=True)
class Clip:
    """A video at the training shape with its caption (and, offline, its score)."""

    frames: np.ndarray  # uint8 [F, H, W, 3]
    caption: str
    reward: float | None = None
    all_good: bool | None = None


def load_prompts(config: RunConfig) -> list[str]:
    """The config's prompts followed by the prompts file's non-empty lines."""
    prompts = list(config.prompts)
    if config.prompts_file is not None:
        try:
            lines = config.prompts_file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise InvalidInput(
                f"prompts_file: cannot read {config.prompts_file}: {exc.strerror}"
            ) from None
        prompts += [line.strip() for line in lines if line.strip()]
    if config.mode == "online" and not prompts:
        raise InvalidInput("prompts_file: the file has no prompts (one per line)")
    return prompts


def decode_all(data: bytes, what: str) -> np.ndarray:
    """Every frame of an encoded video, uint8 [F, H, W, 3]."""
    try:
        video = decode_video(data, _LIMITS, max_samples=_LIMITS.max_frames)
    except LiftError as exc:
        raise InvalidInput(f"{what}: {exc.message}") from None
    return np.stack([f for f in video.frames])


def to_shape(frames: np.ndarray, shape: Shape) -> np.ndarray:
    """``frames`` brought to ``shape`` (see the module docstring)."""
    n = frames.shape[0]
    idx = np.minimum(np.arange(shape.frames), n - 1)
    frames = frames[idx]
    h, w = frames.shape[1:3]
    want = shape.width / shape.height
    if w / h > want:  # too wide: crop the sides
        cw = max(1, round(h * want))
        x0 = (w - cw) // 2
        frames = frames[:, :, x0 : x0 + cw]
    elif w / h < want:
        ch = max(1, round(w / want))
        y0 = (h - ch) // 2
        frames = frames[:, y0 : y0 + ch]
    if frames.shape[1:3] == (shape.height, shape.width):
        return np.ascontiguousarray(frames)
    return np.stack(
        [cv2.resize(f, (shape.width, shape.height), interpolation=cv2.INTER_AREA) for f in frames]
    )


def _read(path: Path, field: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"{field}: cannot read {path}: {exc.strerror}") from None


def _records(path: Path, field: str) -> list[dict[str, object]]:
    """Records from a JSON list or a JSONL file."""
    text = _read(path, field).decode("utf-8", errors="replace")
    try:
        if path.suffix == ".jsonl":
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            rows = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"{field}: {path} is not valid JSON ({exc.msg}, line {exc.lineno})"
        ) from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise InvalidInput(f"{field}: {path} must hold a list of objects")
    if not rows:
        raise InvalidInput(f"{field}: {path} has no records")
    if len(rows) > MAX_CLIPS:
        raise InvalidInput(f"{field}: {path} has {len(rows)} records; the limit is {MAX_CLIPS}")
    return rows


def _caption(row: dict[str, object], field: str, i: int) -> str:
    caption = row.get("caption")
    if not isinstance(caption, str) or not caption.strip():
        raise InvalidInput(f"{field}: record {i} needs a non-empty 'caption'")
    return caption


def _video_path(row: dict[str, object], base: Path, field: str, i: int) -> Path:
    video = row.get("video")
    if not isinstance(video, str) or not video:
        raise InvalidInput(f"{field}: record {i} needs 'video' (a path)")
    return base / video


def load_real_clips(path: Path, shape: Shape) -> list[Clip]:
    """Real clips from a directory (captions.json or .txt sidecars) or a JSON/JSONL file."""
    field = "real_data.path"
    pairs: list[tuple[Path, str]] = []
    if path.is_dir():
        captions: dict[str, str] = {}
        if (path / "captions.json").is_file():
            loaded = json.loads(_read(path / "captions.json", field))
            if not isinstance(loaded, dict):
                raise InvalidInput(f"{field}: captions.json must map file names to captions")
            captions = {str(k): str(v) for k, v in loaded.items()}
        for video in sorted(p for p in path.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES):
            sidecar = video.with_suffix(".txt")
            caption = captions.get(video.name) or (
                sidecar.read_text(encoding="utf-8").strip() if sidecar.is_file() else ""
            )
            if not caption:
                raise InvalidInput(
                    f"{field}: {video.name} has no caption (add it to captions.json or "
                    f"{sidecar.name})"
                )
            pairs.append((video, caption))
    elif path.is_file():
        rows = _records(path, field)
        pairs = [
            (_video_path(r, path.parent, field, i), _caption(r, field, i))
            for i, r in enumerate(rows)
        ]
    else:
        raise InvalidInput(f"{field}: {path} does not exist")
    if not pairs:
        raise InvalidInput(f"{field}: {path} holds no videos ({', '.join(VIDEO_SUFFIXES)})")
    return [
        Clip(to_shape(decode_all(_read(v, field), f"{field} {v.name}"), shape), c) for v, c in pairs
    ]


_LABELS = ("good", "normal", "bad")


def load_offline_clips(path: Path, shape: Shape | None, reward_map: RewardMap) -> list[Clip]:
    """Pre-scored clips; ``shape`` None takes the first video's own shape.

    A record gives its ``reward`` (or ``score``) in [0, 1], or ``labels`` per
    dimension whose Eq. 2 reward under ``reward_map`` is used (labels count as certain).
    """
    field = "offline_data.path"
    rows = _records(path, field)
    clips: list[Clip] = []
    for i, row in enumerate(rows):
        caption = _caption(row, field, i)
        video = _video_path(row, path.parent, field, i)
        labels = row.get("labels")
        all_good: bool | None = None
        reward = row.get("reward", row.get("score"))
        if labels is not None:
            if (
                not isinstance(labels, dict)
                or not labels
                or any(v not in _LABELS for v in labels.values())
            ):
                raise InvalidInput(
                    f"{field}: record {i} 'labels' must map dimensions to good, normal or bad"
                )
            all_good = all(v == "good" for v in labels.values())
            if reward is None:
                reward = labels_reward(labels, reward_map)
        if isinstance(reward, bool) or not isinstance(reward, int | float) or not 0 <= reward <= 1:
            raise InvalidInput(f"{field}: record {i} needs 'reward' in [0, 1] (or 'labels')")
        frames = decode_all(_read(video, field), f"{field} record {i}")
        if shape is None:
            n, h, w = frames.shape[:3]
            shape = Shape(n, h - h % 16, w - w % 16)
        clips.append(Clip(to_shape(frames, shape), caption, float(reward), all_good))
    return clips
