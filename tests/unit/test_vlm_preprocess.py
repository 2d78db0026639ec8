"""Our frame preprocessing against transformers' Qwen2-VL processors."""

from __future__ import annotations

import numpy as np
import pytest

from lift.services.critic.backends.vlm.preprocess import PatchConfig, preprocess_video, smart_resize


@pytest.mark.parametrize("size", [(480, 720), (720, 480), (100, 1000), (16, 16), (2160, 3840)])
def test_smart_resize_respects_factor_and_pixel_bounds(size: tuple[int, int]) -> None:
    cfg = PatchConfig(min_pixels=56 * 56, max_pixels=28 * 28 * 64)
    h, w = smart_resize(*size, cfg)
    assert h % 28 == 0 and w % 28 == 0
    assert h * w <= cfg.max_pixels
    assert h * w >= cfg.min_pixels or h * w >= 28 * 28
    # aspect ratio kept within a patch
    assert abs(h / w - size[0] / size[1]) < 0.5 * max(1, size[0] / size[1])


def _frames(n: int, h: int = 120, w: int = 200) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def test_odd_frame_counts_pad_with_the_last_frame() -> None:
    cfg = PatchConfig(min_pixels=28 * 28, max_pixels=28 * 28 * 4)
    pixels, grid = preprocess_video(_frames(3), cfg)
    assert grid[0] == 2
    assert pixels.shape == (grid[0] * grid[1] * grid[2], 3 * 2 * 14 * 14)


def test_matches_the_transformers_image_processor_on_still_frames() -> None:
    """A still video (the same frame twice) is one temporal patch of that image."""
    pil = pytest.importorskip("transformers.models.qwen2_vl.image_processing_pil_qwen2_vl")
    from PIL import Image

    cfg = PatchConfig(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 16)
    frame = _frames(1)[0]
    proc = pil.Qwen2VLImageProcessorPil(
        size={"shortest_edge": cfg.min_pixels, "longest_edge": cfg.max_pixels}
    )
    ref = proc(images=[Image.fromarray(frame)], return_tensors="np")
    ours, grid = preprocess_video(np.stack([frame, frame]), cfg)
    assert list(ref["image_grid_thw"][0]) == list(grid)
    np.testing.assert_allclose(ours, ref["pixel_values"], atol=1e-5)


def test_matches_the_transformers_video_processor() -> None:
    """Runs where torchvision is importable (transformers' video processors need it)."""
    pytest.importorskip("torchvision")
    import torch
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    cfg = PatchConfig(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 16)
    frames = _frames(8)
    proc = Qwen2VLVideoProcessor(
        size={"shortest_edge": cfg.min_pixels, "longest_edge": cfg.max_pixels}
    )
    ref = proc(videos=[torch.from_numpy(frames).permute(0, 3, 1, 2)], return_tensors="np")
    ours, grid = preprocess_video(frames, cfg)
    assert list(ref["video_grid_thw"][0]) == list(grid)
    # torchvision and PIL round their antialiased bicubic differently by at most a level
    diff = np.abs(ours - ref["pixel_values_videos"])
    assert diff.mean() < 0.01 and diff.max() < 0.1
