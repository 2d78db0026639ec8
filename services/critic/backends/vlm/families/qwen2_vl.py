"""Qwen2-VL and Qwen2.5-VL: patch-flattened video input and 3-D (M-RoPE) positions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from lift.services.critic.backends.vlm.families.base import VisionInput
from lift.services.critic.backends.vlm.preprocess import PatchConfig, preprocess_video

VIDEO_TYPE_ID = 2  # mm_token_type_ids: text 0, image 1, video 2


class Qwen2VLFamily:
    """Qwen2-VL (``model_type`` qwen2_vl)."""

    name = "qwen2_vl"
    video_token = "<|video_pad|>"
    time_aware = False

    def __init__(self, checkpoint: Path) -> None:
        self.patches = PatchConfig.from_checkpoint(checkpoint)

    def load(self, path: Path, dtype: Any, device: str, attn: str) -> Any:
        from transformers import AutoModelForImageTextToText

        model = AutoModelForImageTextToText.from_pretrained(
            str(path), dtype=dtype, attn_implementation=attn
        )
        return model.to(device).eval()  # type: ignore[arg-type]

    def prepare(self, frames: np.ndarray, seconds_per_frame: float) -> VisionInput:
        pixels, grid = preprocess_video(frames, self.patches)
        merge = self.patches.merge_size
        return VisionInput(
            pixels=pixels,
            grid=grid,
            num_tokens=grid[0] * grid[1] * grid[2] // (merge * merge),
            seconds_per_grid_t=self.patches.temporal_patch_size * seconds_per_frame,
        )

    @staticmethod
    def _inner(model: Any) -> Any:
        return model.model

    def encode_videos(self, model: Any, videos: list[VisionInput]) -> list[Any]:
        device = model.device
        pixels = torch.from_numpy(np.concatenate([v.pixels for v in videos])).to(device)
        grid = torch.tensor([v.grid for v in videos], dtype=torch.long, device=device)
        out = self._inner(model).get_video_features(pixels, grid, return_dict=True)
        return list(out.pooler_output)

    def _rope_kwargs(self, videos: list[VisionInput], device: Any) -> dict[str, Any]:
        return {}

    def position_ids(
        self, model: Any, input_ids: Any, attention_mask: Any, videos: list[VisionInput]
    ) -> Any:
        video_id = model.config.video_token_id
        types = (input_ids == video_id).to(torch.int32) * VIDEO_TYPE_ID
        grid = torch.tensor([v.grid for v in videos], dtype=torch.long, device=input_ids.device)
        positions, _ = self._inner(model).get_rope_index(
            input_ids,
            types,
            video_grid_thw=grid,
            attention_mask=attention_mask,
            **self._rope_kwargs(videos, input_ids.device),
        )
        return positions  # (3, B, L)

    def next_position_ids(self, prefill: Any, step: int) -> Any:
        last = prefill.amax(dim=2, keepdim=True)  # (3, B, 1); text positions share all axes
        return last.amax(dim=0, keepdim=True).expand(3, -1, -1) + 1 + step

    def embed(self, model: Any, input_ids: Any) -> Any:
        return model.get_input_embeddings()(input_ids)

    def decode(
        self,
        model: Any,
        inputs_embeds: Any,
        attention_mask: Any,
        position_ids: Any,
        past_key_values: Any = None,
        use_cache: bool = False,
    ) -> tuple[Any, Any]:
        out = self._inner(model).language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            use_cache=use_cache,
        )
        logits = model.lm_head(out.last_hidden_state[:, -1, :])
        return logits, out.past_key_values


class Qwen25VLFamily(Qwen2VLFamily):
    """Qwen2.5-VL (``model_type`` qwen2_5_vl): like Qwen2-VL, with absolute-time positions."""

    name = "qwen2_5_vl"
    time_aware = True

    def _rope_kwargs(self, videos: list[VisionInput], device: Any) -> dict[str, Any]:
        seconds = torch.tensor([v.seconds_per_grid_t for v in videos], device=device)
        return {"second_per_grid_ts": seconds}
