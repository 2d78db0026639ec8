"""The ``vlm`` backend: a transformers video VLM judging all three LiFT dimensions."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lift.checkpoints import fingerprint, quiet_hf, resolve_device, resolve_dtype
from lift.critique import DIMENSIONS, Dimension, DimensionVerdict, ModelInfo
from lift.errors import InvalidInput
from lift.services.critic.backends.base import ONE_FRAME_REASON, Judgement, one_frame
from lift.services.critic.backends.vlm.families import family_for
from lift.services.critic.backends.vlm.scoring import PreparedItem, VlmScorer
from lift.templates import load_templates
from lift.video import DecodedVideo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VlmOptions:
    """How to load and run the model (filled from the critic settings)."""

    model: Path
    adapter: Path | None = None
    templates: str | Path | None = None
    """A preset name (lift-13b) or a template file; None: the built-in LiFT templates."""
    device: str = "auto"
    dtype: str = "auto"
    attn_implementation: str = "sdpa"
    num_frames: int = 8
    max_reason_tokens: int = 48
    vision: str = "torch"
    """Where the vision tower runs: torch, onnx (onnxruntime) or triton."""
    vision_graph: Path | None = None
    """Directory of the exported graph (``lift critic export``), for onnx and triton."""
    triton_url: str = "127.0.0.1:8001"
    triton_model: str = "lift_critic_vision"
    triton_timeout_s: float = 30.0


def load_checkpoint(options: VlmOptions) -> tuple[Any, Any, Any]:
    """(family, model, tokenizer) of ``options.model``: the family its config.json names,
    the weights on the device, any adapter merged, the family settled on the final weights."""
    import torch

    try:
        config = json.loads((options.model / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{options.model}/config.json is not readable JSON: {exc}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{options.model}/config.json must hold a JSON object")
    family = family_for(str(config.get("model_type", "?")), options.model)
    device = resolve_device(options.device)
    dtype = resolve_dtype(options.dtype, device)
    torch.manual_seed(0)  # nothing here is random, but keep any stray init reproducible
    model = family.load(options.model, dtype, device, options.attn_implementation)
    if options.adapter is not None:
        model = family.apply_adapter(model, options.adapter)
    family.finish(model)
    return family, model, family.tokenizer(options.model)


class VlmBackend:
    """Label probabilities from the model's logits; reasons decoded greedily after the label."""

    assessed: tuple[Dimension, ...] = DIMENSIONS
    pixel_format = "rgb24"
    batched = True

    def __init__(self, options: VlmOptions) -> None:

        quiet_hf()
        self.family, model, tokenizer = load_checkpoint(options)
        templates = load_templates(options.templates)
        self.scorer = VlmScorer(model, tokenizer, self.family, templates, options.max_reason_tokens)
        if options.vision != "torch":
            self.scorer.family = self._vision_family(options, model)
        self.max_frames = options.num_frames
        self.frame_sampling = self.family.sampling
        name = options.model.name + (f"+{options.adapter.name}" if options.adapter else "")
        self.model = ModelInfo(
            backend="vlm" if options.vision == "torch" else options.vision,
            name=name,
            version=fingerprint(options.model, options.adapter),
        )
        log.info(
            "vlm critic: %s (%s) on %s, %s, templates %s",
            name,
            self.family.name,
            model.device,
            str(model.dtype).removeprefix("torch."),
            templates.source,
        )

    def _vision_family(self, options: VlmOptions, model: Any) -> Any:
        """The family with its vision pass on onnxruntime or Triton (the rest stays in torch)."""
        from lift.services.critic.backends.vlm import vision_graph as vg

        graph = vg.vision_module(model, self.family)
        if options.adapter is not None and not graph.adapters:
            raise ValueError(
                f"the {options.vision} backend runs an exported vision graph: merge the adapter "
                "into a checkpoint and export from that (adapters apply to the torch backend)"
            )
        encoder: vg.BatchingEncoder
        if options.vision == "onnx":
            if options.vision_graph is None:
                raise ValueError(
                    "the onnx backend needs LIFT_CRITIC_VISION_GRAPH: the directory "
                    "`lift critic export --model DIR --out DIR` wrote"
                )
            vg.check_graph(options.vision_graph, options.model, self.family.name, options.adapter)
            encoder = vg.OnnxEncoder(graph, options.vision_graph)
        else:
            encoder = vg.TritonEncoder(
                graph, options.triton_url, options.triton_model, options.triton_timeout_s
            )
        # The probe compares the graph with the loaded torch tower (adapter merged, if any).
        diff = vg.verify(encoder, self.family, model)
        log.info(
            "%s vision graph verified against the torch tower (max diff %.2g)", options.vision, diff
        )
        return vg.EncoderFamily(self.family, encoder)

    def prepare(self, video: DecodedVideo, prompt: str, check: Callable[[], None]) -> PreparedItem:
        """Resize, patchify and tokenize one question per dimension."""
        if video.num_sampled > 1:
            spf = float(np.mean(np.diff(video.timestamps)))
        else:
            spf = 1.0 / video.fps if video.fps > 0 else 1.0
        # One frame has no motion: the model is not asked (judge_batch marks it unassessed).
        dims = tuple(
            d for d in DIMENSIONS if not (d == Dimension.MOTION_SMOOTHNESS and one_frame(video))
        )
        try:
            return self.scorer.prepare(video.frames, spf, prompt, dims)
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
            judged = {
                dim: DimensionVerdict(
                    dim,
                    a.label,
                    a.probabilities.quality(),
                    a.probabilities,
                    (a.reason,) if with_reasons and a.reason is not None else (),
                )
                for dim, a in zip(item.dims, answers, strict=True)
            }
            for dim in DIMENSIONS:  # one the model was not asked: motion of one frame
                if dim not in judged:
                    verdict = DimensionVerdict.unassessed(dim, ONE_FRAME_REASON)
                    judged[dim] = verdict if with_reasons else verdict.without_reasons()
            results.append(Judgement(tuple(judged[dim] for dim in DIMENSIONS)))
        return results
