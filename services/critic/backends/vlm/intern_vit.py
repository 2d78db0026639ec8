"""InternViT-6B (VILA1.5-40B's vision tower) as our own module, so it loads without remote code.

VILA1.5-40B (and LiFT-Critic-40b on top of it) ships ``vision_tower/`` with
``model_type: intern_vit_6b``, a model published only as code to run from the
checkpoint. Its architecture is a plain pre-norm ViT, built here from
``torch.nn`` parts with the published parameter names so its safetensors load
as they are:

* embeddings: a class token, a ``patch_size`` convolution, learned position
  embeddings for ``1 + (image_size / patch_size)^2`` tokens;
* each layer: ``x + ls1 * attn(norm1(x))``, then ``x + ls2 * mlp(norm2(x))``, where
  the norms are RMSNorm (computed in float32), the attention takes one ``qkv``
  projection, RMS-normalises queries and keys over the full width when
  ``qk_normalization`` is set, and the MLP is ``fc2(act(fc1(x)))``.

``forward`` returns every layer's hidden state (the embeddings first), which is
what VILA's feature selection indexes (``mm_vision_select_layer``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class InternConfig:
    """The fields of ``vision_tower/config.json`` the model needs."""

    hidden_size: int = 3200
    num_attention_heads: int = 25
    intermediate_size: int = 12800
    num_hidden_layers: int = 48
    image_size: int = 448
    patch_size: int = 14
    num_channels: int = 3
    qkv_bias: bool = False
    qk_normalization: bool = True
    layer_norm_eps: float = 1e-6
    hidden_act: str = "gelu"

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> InternConfig:
        known = {f.name for f in fields(cls)}
        config = cls(**{k: v for k, v in raw.items() if k in known})
        if config.hidden_size % config.num_attention_heads:
            raise ValueError(
                f"hidden_size {config.hidden_size} is not divisible by "
                f"num_attention_heads {config.num_attention_heads}"
            )
        if config.image_size % config.patch_size:
            raise ValueError(
                f"image_size {config.image_size} is not a multiple of patch_size {config.patch_size}"
            )
        return config


class RMSNorm(nn.Module):
    """Root-mean-square normalisation with a learned scale (no bias), in float32."""

    def __init__(self, width: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(dtype)


class Embeddings(nn.Module):
    def __init__(self, c: InternConfig) -> None:
        super().__init__()
        grid = c.image_size // c.patch_size
        self.class_embedding = nn.Parameter(torch.zeros(1, 1, c.hidden_size))
        self.patch_embedding = nn.Conv2d(
            c.num_channels, c.hidden_size, kernel_size=c.patch_size, stride=c.patch_size
        )
        self.position_embedding = nn.Parameter(torch.zeros(1, 1 + grid * grid, c.hidden_size))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        dtype = self.patch_embedding.weight.dtype
        patches = self.patch_embedding(pixels.to(dtype)).flatten(2).transpose(1, 2)
        cls = self.class_embedding.to(dtype).expand(patches.shape[0], -1, -1)
        tokens = torch.cat([cls, patches], dim=1)
        if tokens.shape[1] != self.position_embedding.shape[1]:
            raise ValueError(
                f"frames give {tokens.shape[1]} tokens, the tower was trained for "
                f"{self.position_embedding.shape[1]} (wrong input size)"
            )
        return tokens + self.position_embedding.to(dtype)


class Attention(nn.Module):
    def __init__(self, c: InternConfig) -> None:
        super().__init__()
        self.heads = c.num_attention_heads
        self.qkv = nn.Linear(c.hidden_size, 3 * c.hidden_size, bias=c.qkv_bias)
        self.qk_normalization = c.qk_normalization
        if c.qk_normalization:
            self.q_norm = RMSNorm(c.hidden_size, c.layer_norm_eps)
            self.k_norm = RMSNorm(c.hidden_size, c.layer_norm_eps)
        self.proj = nn.Linear(c.hidden_size, c.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, width = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, width).unbind(2)  # each (b, n, width)
        if self.qk_normalization:
            q, k = self.q_norm(q), self.k_norm(k)

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(b, n, self.heads, width // self.heads).transpose(1, 2)

        out = nn.functional.scaled_dot_product_attention(heads(q), heads(k), heads(v))
        out = out.transpose(1, 2).reshape(b, n, width)
        projected: torch.Tensor = self.proj(out)
        return projected


class Mlp(nn.Module):
    def __init__(self, c: InternConfig) -> None:
        super().__init__()
        from transformers.activations import ACT2FN

        self.fc1 = nn.Linear(c.hidden_size, c.intermediate_size)
        self.act = ACT2FN[c.hidden_act]
        self.fc2 = nn.Linear(c.intermediate_size, c.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc2(self.act(self.fc1(x)))
        return out


class Layer(nn.Module):
    def __init__(self, c: InternConfig) -> None:
        super().__init__()
        self.norm1 = RMSNorm(c.hidden_size, c.layer_norm_eps)
        self.attn = Attention(c)
        self.ls1 = nn.Parameter(torch.ones(c.hidden_size))
        self.norm2 = RMSNorm(c.hidden_size, c.layer_norm_eps)
        self.mlp = Mlp(c)
        self.ls2 = nn.Parameter(torch.ones(c.hidden_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x)) * self.ls1
        return x + self.mlp(self.norm2(x)) * self.ls2


class Encoder(nn.Module):
    def __init__(self, c: InternConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(Layer(c) for _ in range(c.num_hidden_layers))


@dataclass
class InternOutput:
    hidden_states: tuple[torch.Tensor, ...]


class InternVisionModel(nn.Module):
    """InternViT: ``forward(pixel_values)`` -> every layer's hidden state, embeddings first."""

    def __init__(self, config: InternConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.encoder = Encoder(config)

    def forward(self, pixel_values: torch.Tensor, **_: Any) -> InternOutput:
        h = self.embeddings(pixel_values)
        states = [h]
        for layer in self.encoder.layers:
            h = layer(h)
            states.append(h)
        return InternOutput(tuple(states))
