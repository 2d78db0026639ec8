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

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np


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
    video_token: str
    """The placeholder token the chat template emits once per video."""

    def load(self, path: Path, dtype: Any, device: str, attn: str) -> Any:
        """The model (``from_pretrained`` on the local directory), in eval mode."""
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
        """Prefill position ids for left-padded rows; ``videos[i]`` is the video of row ``i``."""
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
