"""Qwen2-VL and Qwen2.5-VL: patch-flattened video input and 3-D (M-RoPE) positions."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lift.services.critic.backends.vlm.families.base import VisionInput, decode_last, logits_at
from lift.services.critic.backends.vlm.preprocess import PatchConfig, preprocess_video
from lift.templates import Templates

VIDEO_TYPE_ID = 2  # mm_token_type_ids: text 0, image 1, video 2


class Qwen2VLFamily:
    """Qwen2-VL (``model_type`` qwen2_vl)."""

    name = "qwen2_vl"
    video_token = "<|video_pad|>"
    time_aware = False
    sampling = "time"
    max_length: int | None = None

    def __init__(self, checkpoint: Path) -> None:
        self.patches = PatchConfig.from_checkpoint(checkpoint)

    def load(self, path: Path, dtype: Any, device: str, attn: str) -> Any:
        from transformers import AutoModelForImageTextToText

        model = AutoModelForImageTextToText.from_pretrained(
            str(path), dtype=dtype, attn_implementation=attn, trust_remote_code=False
        )
        return model.to(device).eval()  # type: ignore[arg-type]

    def apply_adapter(self, model: Any, adapter: Path) -> Any:
        from peft import PeftModel

        # Merged into the weights: same outputs as the adapter, no per-call LoRA cost.
        return PeftModel.from_pretrained(model, adapter).merge_and_unload().eval()

    def finish(self, model: Any) -> None:
        """Nothing to settle after loading."""

    def tokenizer(self, path: Path) -> Any:
        from transformers import AutoTokenizer

        # never the checkpoint's code (an auto_map would make transformers ask to run it)
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
        if tokenizer.chat_template is None:
            raise ValueError(
                f"the tokenizer in {path} has no chat template; add one "
                "(chat_template.jinja) that renders a video part as one placeholder"
            )
        return tokenizer

    def placeholder_id(self, tokenizer: Any) -> int:
        ids = tokenizer.convert_tokens_to_ids([self.video_token])
        if not ids or ids[0] is None or ids[0] == tokenizer.unk_token_id:
            raise ValueError(
                f"the tokenizer has no {self.video_token!r} token; is this a video VLM?"
            )
        return int(ids[0])

    def render(
        self, tokenizer: Any, templates: Templates, question: str, vision: VisionInput
    ) -> list[int]:
        """The chat template's prompt, its one video placeholder expanded to the video's tokens."""
        return self.render_parts(tokenizer, templates, [vision, question])

    def render_parts(
        self, tokenizer: Any, templates: Templates, parts: Sequence[str | VisionInput]
    ) -> list[int]:
        """One user turn of text and video parts in order (several videos allowed).

        The chat template renders one placeholder per video part; each is expanded, in
        order, to its video's tokens. :meth:`position_ids` then takes the row's videos
        in the same order.
        """
        if templates.conversation is not None:
            raise ValueError(
                f"{self.name} checkpoints are prompted with their tokenizer's chat template; "
                f"the template file's [conversation] ({templates.conversation.name}) is for "
                "checkpoints without one (vila): remove it or pick another preset"
            )
        messages: list[dict[str, Any]] = []
        if templates.system:
            messages.append({"role": "system", "content": templates.system})
        content = [
            {"type": "text", "text": p} if isinstance(p, str) else {"type": "video"} for p in parts
        ]
        messages.append({"role": "user", "content": content})
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = list(tokenizer.encode(text, add_special_tokens=False))
        video = self.placeholder_id(tokenizer)
        visions = [p for p in parts if not isinstance(p, str)]
        where = [i for i, t in enumerate(ids) if t == video]
        if len(where) != len(visions):
            n = len(visions)
            raise ValueError(
                f"the chat template rendered {len(where)} video placeholders for {n} "
                f"video{'s' if n != 1 else ''}; it must render exactly one per video"
            )
        out: list[int] = []
        start = 0
        for i, vision in zip(where, visions, strict=True):
            out += ids[start:i] + [video] * vision.num_tokens
            start = i + 1
        return out + ids[start:]

    def answer_ids(self, tokenizer: Any, templates: Templates, text: str) -> list[int]:
        """Byte-level BPE: the answer tokenizes the same alone as after the prompt."""
        return list(tokenizer.encode(text, add_special_tokens=False))

    def stop_texts(self, templates: Templates) -> list[str]:
        return []

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
        return decode_last(
            self._inner(model).language_model,
            model.lm_head,
            inputs_embeds,
            attention_mask,
            position_ids,
            past_key_values,
            use_cache,
        )

    def logits_at(
        self, model: Any, inputs_embeds: Any, attention_mask: Any, position_ids: Any, select: Any
    ) -> Any:
        """Training: (N, V) logits at the ``select``-ed positions of the full sequences."""
        return logits_at(
            self._inner(model).language_model,
            model.lm_head,
            inputs_embeds,
            attention_mask,
            position_ids,
            select,
        )


class Qwen25VLFamily(Qwen2VLFamily):
    """Qwen2.5-VL (``model_type`` qwen2_5_vl): like Qwen2-VL, with absolute-time positions."""

    name = "qwen2_5_vl"
    time_aware = True

    def _rope_kwargs(self, videos: list[VisionInput], device: Any) -> dict[str, Any]:
        seconds = torch.tensor([v.seconds_per_grid_t for v in videos], device=device)
        return {"second_per_grid_ts": seconds}
