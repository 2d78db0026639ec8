"""VILA's multimodal projector (``mm_projector/``), our own module with the published layout.

VILA saves the projector as ``mm_projector/config.json`` (``mm_projector_type``)
plus weights named ``layers.*``; this module builds the same parameter names so
those weights load as they are. Types:

* ``identity``: the vision features unchanged (needs equal widths);
* ``linear``: one ``nn.Linear``;
* ``mlp<N>x_gelu``: N linear layers with GELU between them;
* ``mlp_downsample``: every 2x2 block of neighbouring patches concatenated into
  one token (an odd grid is first padded with zeros at its bottom and right),
  then LayerNorm, Linear, GELU, Linear. The token order and the order of the four
  patches inside a token follow VILA's ``DownSampleBlock`` exactly (tested
  against a direct computation in tests/unit/test_vila.py).
"""

from __future__ import annotations

import math
import re

import torch
from torch import nn

PROJECTOR_TYPES = ("identity", "linear", "mlp_downsample", "mlp<N>x_gelu")
_MLP = re.compile(r"^mlp(\d+)x_gelu$")


def downsample_2x2(x: torch.Tensor) -> torch.Tensor:
    """(B, N, C) patch features on a square grid -> (B, ceil(side/2)^2, 4C).

    The grid is read row by row; odd sides get a zero row/column appended. A
    token gathers the patches (r, c), (r, c+1), (r+1, c), (r+1, c+1) in that
    channel order, and tokens run over column pairs first, then row pairs
    (VILA's layout, which transposes the token grid).
    """
    b, n, c = x.shape
    side = math.isqrt(n)
    if side * side != n:
        raise ValueError(f"mlp_downsample needs a square patch grid, got {n} patches")
    grid = x.reshape(b, side, side, c)
    if side % 2:
        grid = torch.cat([grid, grid.new_zeros(b, 1, side, c)], dim=1)
        grid = torch.cat([grid, grid.new_zeros(b, side + 1, 1, c)], dim=2)
        side += 1
    half = side // 2
    # (b, row, col_pair, 2c): neighbours along a row side by side
    pairs = grid.reshape(b, side, half, 2 * c)
    # (b, col_pair, row, 2c) -> (b, col_pair, row_pair, 4c): two rows stacked
    out = pairs.permute(0, 2, 1, 3).reshape(b, half, half, 4 * c)
    return out.reshape(b, half * half, 4 * c)


class DownSample(nn.Module):
    """The parameter-free first stage of ``mlp_downsample``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return downsample_2x2(x)


class Projector(nn.Module):
    """Vision features (B, N, mm_hidden) -> language-model embeddings (B, M, hidden)."""

    def __init__(self, kind: str, mm_hidden: int, hidden: int) -> None:
        super().__init__()
        self.kind = kind
        self.layers: nn.Module
        if kind == "identity":
            if mm_hidden != hidden:
                raise ValueError(
                    f"an identity projector needs the vision width ({mm_hidden}) to equal the "
                    f"language model's ({hidden})"
                )
            self.layers = nn.Identity()
        elif kind == "linear":
            self.layers = nn.Linear(mm_hidden, hidden)
        elif kind == "mlp_downsample":
            self.layers = nn.Sequential(
                DownSample(),
                nn.LayerNorm(4 * mm_hidden),
                nn.Linear(4 * mm_hidden, hidden),
                nn.GELU(),
                nn.Linear(hidden, hidden),
            )
        elif m := _MLP.match(kind):
            depth = int(m.group(1))
            if depth < 1:
                raise ValueError(f"projector type {kind!r} needs at least one layer")
            modules: list[nn.Module] = [nn.Linear(mm_hidden, hidden)]
            for _ in range(1, depth):
                modules += [nn.GELU(), nn.Linear(hidden, hidden)]
            self.layers = nn.Sequential(*modules)
        else:
            raise ValueError(
                f"unknown projector type {kind!r} in mm_projector/config.json; "
                f"supported: {', '.join(PROJECTOR_TYPES)}"
            )

    def tokens(self, patches: int) -> int:
        """Output tokens for ``patches`` input patches."""
        if self.kind != "mlp_downsample":
            return patches
        side = math.isqrt(patches)
        if side * side != patches:
            raise ValueError(
                f"mlp_downsample needs a square patch grid, but the tower gives {patches} "
                "features per frame (check mm_vision_select_feature: 'patch' drops one)"
            )
        return ((side + 1) // 2) ** 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.layers(x)
        return out
