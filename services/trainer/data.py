"""What a run trains on: prompts, real clips and pre-scored (offline) videos.

Videos are read with the suite's decoder and brought to the training shape
(frames, height, width) here, once, so the training step only sees uint8 arrays
of one shape: first ``frames`` frames (the last repeated if the clip is shorter),
centre-cropped to the aspect ratio, then resized with area averaging.

Every file is read through a :class:`DataAccess`: under the trainer's data roots,
regular files only, each with a size cap (see :mod:`lift.services.trainer.access`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from lift.errors import InvalidInput, LiftError
from lift.reward import RewardMap, labels_reward
from lift.services.trainer.access import DataRoots
from lift.services.trainer.config import MAX_PROMPT_CHARS, RunConfig
from lift.video.decode import VideoLimits, decode_video

VIDEO_SUFFIXES = (".mp4", ".webm", ".mkv", ".mov", ".avi", ".gif")
MAX_CLIPS = 100_000
_LIMITS = VideoLimits()


@dataclass(frozen=True)
class DataAccess:
    """Where a run may read from and how much: roots plus size caps."""

    roots: DataRoots = field(default_factory=lambda: DataRoots.of(None))
    """Default: anywhere (a library caller is its own operator); the service passes its roots."""
    max_prompts_file_bytes: int = 4 * 1024 * 1024
    max_file_bytes: int = 256 * 1024 * 1024
    max_dataset_bytes: int = 16 * 1024**3
    """Most memory a dataset's clips may take at the training shape (uint8 RGB)."""

    def read(self, path: Path, field: str) -> bytes:
        """A dataset file's bytes (a video, a record file, captions)."""
        return self.roots.read(path, field, self.max_file_bytes)

    def check_size(self, clips: int, shape: Shape, field: str) -> None:
        """Refuse, before decoding, a dataset that would not fit ``max_dataset_bytes``."""
        need = clips * shape.frames * shape.height * shape.width * 3
        if need > self.max_dataset_bytes:
            raise InvalidInput(
                f"{field}: {clips} clips of {shape.frames}x{shape.height}x{shape.width} take "
                f"{need / 1024**3:.1f} GiB; the trainer's limit is "
                f"{self.max_dataset_bytes / 1024**3:.1f} GiB (fewer or smaller clips)"
            )


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


def load_prompts(config: RunConfig, access: DataAccess | None = None) -> list[str]:
    """The config's prompts followed by the prompts file's non-empty lines."""
    access = access or DataAccess()
    prompts = list(config.prompts)
    if config.prompts_file is not None:
        data = access.roots.read(config.prompts_file, "prompts_file", access.max_prompts_file_bytes)
        try:
            lines = data.decode("utf-8").splitlines()
        except UnicodeDecodeError as exc:
            raise InvalidInput(
                f"prompts_file: {config.prompts_file} is not UTF-8 text (byte {exc.start})"
            ) from None
        prompts += [line.strip() for line in lines if line.strip()]
        if any(len(p) > MAX_PROMPT_CHARS for p in prompts):
            raise InvalidInput(
                f"prompts_file: a line is longer than {MAX_PROMPT_CHARS} characters "
                "(one prompt per line)"
            )
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


def _records(path: Path, field: str, access: DataAccess) -> list[dict[str, object]]:
    """Records from a JSON list or a JSONL file."""
    text = access.read(path, field).decode("utf-8", errors="replace")
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
    if not isinstance(video, str) or not video or "\x00" in video:
        raise InvalidInput(f"{field}: record {i} needs 'video' (a path)")
    return base / video


def load_real_clips(path: Path, shape: Shape, access: DataAccess | None = None) -> list[Clip]:
    """Real clips from a directory (captions.json or .txt sidecars) or a JSON/JSONL file."""
    access = access or DataAccess()
    field = "real_data.path"
    path = access.roots.file_or_directory(path, field)
    pairs: list[tuple[Path, str]] = []
    if path.is_dir():
        captions: dict[str, str] = {}
        if (path / "captions.json").is_file():
            try:
                loaded = json.loads(access.read(path / "captions.json", field))
            except ValueError:
                raise InvalidInput(f"{field}: captions.json is not valid JSON") from None
            if not isinstance(loaded, dict):
                raise InvalidInput(f"{field}: captions.json must map file names to captions")
            captions = {str(k): str(v) for k, v in loaded.items()}
        for video in sorted(p for p in path.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES):
            if len(pairs) >= MAX_CLIPS:
                raise InvalidInput(f"{field}: more than {MAX_CLIPS} videos")
            sidecar = video.with_suffix(".txt")
            caption = captions.get(video.name) or (
                access.read(sidecar, f"{field} {sidecar.name}")
                .decode("utf-8", errors="replace")
                .strip()
                if sidecar.is_file()
                else ""
            )
            if not caption:
                raise InvalidInput(
                    f"{field}: {video.name} has no caption (add it to captions.json or "
                    f"{sidecar.name})"
                )
            pairs.append((video, caption))
    else:
        rows = _records(path, field, access)
        pairs = [
            (_video_path(r, path.parent, field, i), _caption(r, field, i))
            for i, r in enumerate(rows)
        ]
    if not pairs:
        raise InvalidInput(f"{field}: the directory holds no videos ({', '.join(VIDEO_SUFFIXES)})")
    access.check_size(len(pairs), shape, field)
    return [
        Clip(
            to_shape(
                decode_all(access.read(v, f"{field} video {v.name}"), f"{field} {v.name}"), shape
            ),
            c,
        )
        for v, c in pairs
    ]


_LABELS = ("good", "normal", "bad")


def load_offline_clips(
    path: Path, shape: Shape | None, reward_map: RewardMap, access: DataAccess | None = None
) -> list[Clip]:
    """Pre-scored clips; ``shape`` None takes the first video's own shape.

    A record gives its ``reward`` (or ``score``) in [0, 1], or ``labels`` per
    dimension whose Eq. 2 reward under ``reward_map`` is used (labels count as certain).
    """
    access = access or DataAccess()
    field = "offline_data.path"
    path = access.roots.file(path, field)  # resolved: videos are relative to the real file
    rows = _records(path, field, access)
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
        frames = decode_all(access.read(video, f"{field} record {i} video"), f"{field} record {i}")
        if shape is None:
            n, h, w = frames.shape[:3]
            shape = Shape(n, h - h % 16, w - w % 16)
        if i == 0:
            access.check_size(len(rows), shape, field)
        clips.append(Clip(to_shape(frames, shape), caption, float(reward), all_good))
    return clips
