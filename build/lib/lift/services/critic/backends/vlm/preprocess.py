"""Frame preprocessing for patch-based video VLMs (Qwen2-VL layout), in numpy + PIL.

There is no CPU torchvision here, and transformers' video processors need it,
so this module does the same steps itself: resize every frame so both sides are
multiples of ``patch_size * merge_size`` with the pixel count in
``[min_pixels, max_pixels]`` (aspect kept), bicubic with antialiasing (PIL),
rescale to [0, 1], normalise with the checkpoint's mean/std, pad the frame
count to a multiple of ``temporal_patch_size`` by repeating the last frame, and
flatten into ``(grid_t * grid_h * grid_w, C * T * P * P)`` patches in the order
the vision tower expects (merge windows contiguous).

Parity with transformers' processors is tested in tests/unit/test_vlm_preprocess.py.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class PatchConfig:
    """The checkpoint's preprocessing numbers."""

    patch_size: int = 14
    temporal_patch_size: int = 2
    merge_size: int = 2
    min_pixels: int = 128 * 28 * 28
    max_pixels: int = 768 * 28 * 28
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    rescale_factor: float = 1 / 255

    @property
    def factor(self) -> int:
        """Both resized sides are multiples of this."""
        return self.patch_size * self.merge_size

    @classmethod
    def from_checkpoint(cls, directory: Path) -> PatchConfig:
        """Read ``video_preprocessor_config.json`` (else ``preprocessor_config.json``)."""
        for name in ("video_preprocessor_config.json", "preprocessor_config.json"):
            path = directory / name
            if path.is_file():
                raw = json.loads(path.read_text(encoding="utf-8"))
                break
        else:
            return cls()
        size = raw.get("size") or {}
        default = cls()
        return cls(
            patch_size=int(raw.get("patch_size", default.patch_size)),
            temporal_patch_size=int(raw.get("temporal_patch_size", default.temporal_patch_size)),
            merge_size=int(raw.get("merge_size", default.merge_size)),
            min_pixels=int(
                raw.get("min_pixels") or size.get("shortest_edge") or default.min_pixels
            ),
            max_pixels=int(raw.get("max_pixels") or size.get("longest_edge") or default.max_pixels),
            mean=tuple(raw.get("image_mean", default.mean)),  # type: ignore[arg-type]
            std=tuple(raw.get("image_std", default.std)),  # type: ignore[arg-type]
            rescale_factor=float(raw.get("rescale_factor", default.rescale_factor)),
        )


def smart_resize(height: int, width: int, cfg: PatchConfig) -> tuple[int, int]:
    """Target (height, width): multiples of ``cfg.factor``, pixel count within bounds."""
    factor = cfg.factor
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"aspect ratio {width}x{height} is too extreme (over 200:1)")
    h = round(height / factor) * factor
    w = round(width / factor) * factor
    if h * w > cfg.max_pixels:
        beta = math.sqrt(height * width / cfg.max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif h * w < cfg.min_pixels:
        beta = math.sqrt(cfg.min_pixels / (height * width))
        h = math.ceil(height * beta / factor) * factor
        w = math.ceil(width * beta / factor) * factor
    return h, w


def resize_frames(frames: np.ndarray, cfg: PatchConfig) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, h, w, 3) uint8 at the smart-resized size."""
    n, height, width, _ = frames.shape
    h, w = smart_resize(height, width, cfg)
    if (h, w) == (height, width):
        return frames
    out = np.empty((n, h, w, 3), dtype=np.uint8)
    for i in range(n):
        out[i] = np.asarray(Image.fromarray(frames[i]).resize((w, h), Image.Resampling.BICUBIC))
    return out


def normalize(frames: np.ndarray, cfg: PatchConfig) -> np.ndarray:
    """uint8 (N, h, w, 3) -> float32 (N, 3, h, w), rescaled and normalised."""
    x = frames.astype(np.float32) * np.float32(cfg.rescale_factor)
    x -= np.asarray(cfg.mean, dtype=np.float32)
    x /= np.asarray(cfg.std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def patchify(x: np.ndarray, cfg: PatchConfig) -> tuple[np.ndarray, tuple[int, int, int]]:
    """(N, C, h, w) float32 -> flattened patches and the (t, h, w) patch grid."""
    n, c, h, w = x.shape
    tp, p, m = cfg.temporal_patch_size, cfg.patch_size, cfg.merge_size
    if pad := -n % tp:
        x = np.concatenate([x, np.repeat(x[-1:], pad, axis=0)], axis=0)
        n += pad
    gt, gh, gw = n // tp, h // p, w // p
    x = x.reshape(gt, tp, c, gh // m, m, p, gw // m, m, p)
    # -> (t, h-window, w-window, h-in-window, w-in-window, C, T, P, P)
    x = x.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return np.ascontiguousarray(x.reshape(gt * gh * gw, c * tp * p * p)), (gt, gh, gw)


def preprocess_video(
    frames: np.ndarray, cfg: PatchConfig
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """RGB uint8 frames (N, H, W, 3) -> (patches, (grid_t, grid_h, grid_w))."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected RGB frames (N, H, W, 3), got shape {frames.shape}")
    return patchify(normalize(resize_frames(frames, cfg), cfg), cfg)
