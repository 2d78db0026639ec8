"""What differs between video-VLM families, behind one small interface.

The scoring code (``scoring.py``) is family-agnostic: it tokenizes the chat,
runs the vision tower once per video, scatters the video embeddings into the
placeholder positions of every question about that video, and reads label
logits. A family adapter supplies the pieces that differ: which model class
to load, how frames become vision-tower input, how many placeholder tokens a
video takes, how to run the vision tower and the text decoder, and how
positions are numbered. Supporting another family (e.g. LLaVA-OneVision) is
a new module here plus one line in ``FAMILIES``.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from lift.templates import Templates


@dataclass(frozen=True)
class VisionInput:
    """One video, preprocessed for the vision tower (numpy, built off the model thread)."""

    pixels: np.ndarray
    """Family-specific array (Qwen2-VL: flattened patches (L, C*T*P*P))."""
    grid: tuple[int, int, int]
    """Feature grid (t, h, w) before spatial merging."""
    num_tokens: int
    """Placeholder tokens the video takes in the text sequence."""
    seconds_per_grid_t: float
    """Seconds of video per temporal grid step (for time-aware position ids)."""


class Family(Protocol):
    """Model-family specifics for the ``vlm`` backend."""

    name: str
    sampling: str
    """How the decoder picks frames: "time" (even in time) or "index" (floor of an even
    spread of frame indices, as LLaVA-style reference code samples)."""
    max_length: int | None
    """The longest prompt (tokens, video included) the model takes; None: no limit known."""

    def load(self, path: Path, dtype: Any, device: str, attn: str) -> Any:
        """The model from the local directory, in eval mode; never runs checkpoint code."""
        ...

    def apply_adapter(self, model: Any, adapter: Path) -> Any:
        """The model with a LoRA adapter directory merged into its weights."""
        ...

    def finish(self, model: Any) -> None:
        """Settle what depends on the final weights (after any adapter)."""
        ...

    def tokenizer(self, path: Path) -> Any:
        """The checkpoint's tokenizer."""
        ...

    def placeholder_id(self, tokenizer: Any) -> int:
        """The id that marks one video-feature position in :meth:`render`'s output."""
        ...

    def render(
        self, tokenizer: Any, templates: Templates, question: str, vision: VisionInput
    ) -> list[int]:
        """Token ids of one question about one video, ``vision.num_tokens`` placeholders in it."""
        ...

    def answer_ids(self, tokenizer: Any, templates: Templates, text: str) -> list[int]:
        """The tokens the model emits for ``text`` as the start of its answer."""
        ...

    def stop_texts(self, templates: Templates) -> list[str]:
        """Texts (beyond the tokenizer's end tokens) that end an answer."""
        ...

    def prepare(self, frames: np.ndarray, seconds_per_frame: float) -> VisionInput:
        """RGB uint8 frames (N, H, W, 3) -> vision-tower input."""
        ...

    def encode_videos(self, model: Any, videos: list[VisionInput]) -> list[Any]:
        """One vision pass over all ``videos``; a (num_tokens, hidden) tensor per video."""
        ...

    def position_ids(
        self, model: Any, input_ids: Any, attention_mask: Any, videos: list[VisionInput]
    ) -> Any:
        """Prefill position ids for left-padded rows; ``videos`` are the rows' videos in order.

        One video per row, or (families with ``render_parts``, e.g. Qwen2-VL: a pairwise
        prompt) every video of each row in the order its placeholder runs appear.
        """
        ...

    def next_position_ids(self, prefill: Any, step: int) -> Any:
        """Position ids of decode step ``step`` (0-based) after ``prefill``."""
        ...

    def embed(self, model: Any, input_ids: Any) -> Any:
        """Token embeddings."""
        ...

    def decode(
        self,
        model: Any,
        inputs_embeds: Any,
        attention_mask: Any,
        position_ids: Any,
        past_key_values: Any = None,
        use_cache: bool = False,
    ) -> tuple[Any, Any]:
        """(logits of the last position (B, V), cache) from the text decoder."""
        ...

    def logits_at(
        self, model: Any, inputs_embeds: Any, attention_mask: Any, position_ids: Any, select: Any
    ) -> Any:
        """Training (``lift critic train``): (N, V) logits at the ``select``-ed positions
        ((B, L) bool) of the full sequences, no cache."""
        ...


@functools.cache
def _cache_keyword(decoder_class: Any) -> str:
    params = inspect.signature(decoder_class.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def cache_keyword(module: Any) -> str:
    """The name a decoder's forward takes its KV cache under (transformers 5 renamed it);
    looked up once per decoder class, not per decode step."""
    decoder_class: Any = type(module)
    return _cache_keyword(decoder_class)


def output_cache(out: Any) -> Any:
    """The KV cache a decoder returned, under either name."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else getattr(out, "past_key_values", None)


def decode_last(
    decoder: Any,
    lm_head: Any,
    inputs_embeds: Any,
    attention_mask: Any,
    position_ids: Any,
    past_key_values: Any = None,
    use_cache: bool = False,
) -> tuple[Any, Any]:
    """(logits of the last position, cache): ``decoder`` (a transformers text model) then
    ``lm_head`` on its last hidden state; what every family's ``decode`` does."""
    out = decoder(
        inputs_embeds=inputs_embeds,
        attention_mask=attention_mask,
        position_ids=position_ids,
        use_cache=use_cache,
        **{cache_keyword(decoder): past_key_values},
    )
    return lm_head(out.last_hidden_state[:, -1, :]), output_cache(out)


def logits_at(
    decoder: Any,
    lm_head: Any,
    inputs_embeds: Any,
    attention_mask: Any,
    position_ids: Any,
    select: Any,
) -> Any:
    """(N, V) logits at the ``select``-ed positions ((B, L) bool, row-major order), no cache:
    the training forward (``decode_last`` serves; this one scores every answer token)."""
    out = decoder(
        inputs_embeds=inputs_embeds,
        attention_mask=attention_mask,
        position_ids=position_ids,
        use_cache=False,
    )
    return lm_head(out.last_hidden_state[select])
