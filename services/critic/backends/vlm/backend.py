"""The ``vlm`` backend: a transformers video VLM judging all three LiFT dimensions."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lift.checkpoints import fingerprint, quiet_hf, resolve_device, resolve_dtype
from lift.critique import DIMENSIONS, Dimension, DimensionVerdict, ModelInfo
from lift.errors import InvalidInput
from lift.video import DecodedVideo
from services.critic.backends.base import Judgement
from services.critic.backends.vlm.families import family_for
from services.critic.backends.vlm.scoring import PreparedItem, VlmScorer
from services.critic.backends.vlm.templates import load_templates

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VlmOptions:
    """How to load and run the model (filled from the critic settings)."""

    model: Path
    adapter: Path | None = None
    templates: Path | None = None
    device: str = "auto"
    dtype: str = "auto"
    attn_implementation: str = "sdpa"
    num_frames: int = 8
    max_reason_tokens: int = 48


class VlmBackend:
    """Label probabilities from the model's logits; reasons decoded greedily after the label."""

    assessed: tuple[Dimension, ...] = DIMENSIONS
    pixel_format = "rgb24"
    batched = True

    def __init__(self, options: VlmOptions) -> None:
        import torch
        from transformers import AutoTokenizer

        quiet_hf()
        config = json.loads((options.model / "config.json").read_text(encoding="utf-8"))
        self.family = family_for(config.get("model_type", "?"), options.model)
        device = resolve_device(options.device)
        dtype = resolve_dtype(options.dtype, device)
        torch.manual_seed(0)  # nothing here is random, but keep any stray init reproducible
        model = self.family.load(options.model, dtype, device, options.attn_implementation)
        if options.adapter is not None:
            from peft import PeftModel

            # Merged into the weights: same outputs as the adapter, no per-call LoRA cost.
            model = PeftModel.from_pretrained(model, options.adapter).merge_and_unload().eval()
        tokenizer = AutoTokenizer.from_pretrained(options.model)
        if tokenizer.chat_template is None:
            raise ValueError(
                f"the tokenizer in {options.model} has no chat template; add one "
                "(chat_template.jinja) that renders a video part as one placeholder"
            )
        templates = load_templates(options.templates)
        self.scorer = VlmScorer(model, tokenizer, self.family, templates, options.max_reason_tokens)
        self.max_frames = options.num_frames
        name = options.model.name + (f"+{options.adapter.name}" if options.adapter else "")
        self.model = ModelInfo(
            backend="vlm", name=name, version=fingerprint(options.model, options.adapter)
        )
        log.info(
            "vlm critic: %s (%s) on %s, %s, templates %s",
            name,
            self.family.name,
            device,
            str(dtype).removeprefix("torch."),
            templates.source,
        )

    def prepare(self, video: DecodedVideo, prompt: str, check: Callable[[], None]) -> PreparedItem:
        """Resize, patchify and tokenize one question per dimension."""
        if video.num_sampled > 1:
            spf = float(np.mean(np.diff(video.timestamps)))
        else:
            spf = 1.0 / video.fps if video.fps > 0 else 1.0
        try:
            return self.scorer.prepare(video.frames, spf, prompt, DIMENSIONS)
        except ValueError as exc:  # e.g. an aspect ratio the vision tower cannot take
            raise InvalidInput(f"the model cannot take this video: {exc}") from None

    def judge_batch(
        self, prepared: Sequence[PreparedItem], with_reasons: bool, check: Callable[[], None]
    ) -> list[Judgement]:
        """One vision pass and one text pass (plus reason decoding) for the whole batch."""
        results = []
        for item, answers in zip(
            prepared, self.scorer.run(prepared, with_reasons, check), strict=True
        ):
            verdicts = tuple(
                DimensionVerdict(
                    dim,
                    a.label,
                    a.probabilities.quality(),
                    a.probabilities,
                    (a.reason,) if with_reasons and a.reason is not None else (),
                )
                for dim, a in zip(item.dims, answers, strict=True)
            )
            results.append(Judgement(verdicts))
        return results
