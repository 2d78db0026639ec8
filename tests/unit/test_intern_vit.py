"""InternViT-6B (VILA1.5-40B's tower) as our own module: names as published, math as specified."""

from __future__ import annotations

import math

import pytest
import torch

from lift.services.critic.backends.vlm.intern_vit import InternConfig, InternVisionModel

TINY = {
    "model_type": "intern_vit_6b",
    "architectures": ["InternVisionModel"],
    "hidden_size": 48,
    "num_attention_heads": 3,
    "intermediate_size": 96,
    "num_hidden_layers": 3,
    "image_size": 56,
    "patch_size": 14,
    "qkv_bias": False,
    "qk_normalization": True,
    "layer_norm_eps": 1e-6,
    "hidden_act": "gelu",
    "use_flash_attn": True,
    "initializer_factor": 0.1,
}

# The parameter names of OpenGVLab/InternViT-6B-448px-V1-2's model.safetensors, per layer.
PUBLISHED_LAYER_KEYS = {
    "attn.qkv.weight",
    "attn.q_norm.weight",
    "attn.k_norm.weight",
    "attn.proj.weight",
    "attn.proj.bias",
    "mlp.fc1.weight",
    "mlp.fc1.bias",
    "mlp.fc2.weight",
    "mlp.fc2.bias",
    "norm1.weight",
    "norm2.weight",
    "ls1",
    "ls2",
}


@pytest.fixture(scope="module")
def tower() -> InternVisionModel:
    torch.manual_seed(0)
    model = InternVisionModel(InternConfig.from_dict(TINY)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    return model


def test_parameter_names_are_the_published_ones(tower) -> None:
    keys = set(tower.state_dict())
    top = {k for k in keys if not k.startswith("encoder.layers.")}
    assert top == {
        "embeddings.class_embedding",
        "embeddings.patch_embedding.weight",
        "embeddings.patch_embedding.bias",
        "embeddings.position_embedding",
    }
    for i in range(TINY["num_hidden_layers"]):
        layer = {
            k.split(f"encoder.layers.{i}.", 1)[1]
            for k in keys
            if k.startswith(f"encoder.layers.{i}.")
        }
        assert layer == PUBLISHED_LAYER_KEYS
    assert tower.state_dict()["embeddings.position_embedding"].shape == (1, 1 + 16, 48)


def _rms(x: torch.Tensor, w: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    return w * (x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps))


def _by_hand(tower: InternVisionModel, pixels: torch.Tensor) -> list[torch.Tensor]:
    """The architecture written out with explicit loops and softmax (independent of the module)."""
    sd = {k: v.double() for k, v in tower.state_dict().items()}
    b = pixels.shape[0]
    p = TINY["patch_size"]
    grid = TINY["image_size"] // p
    x = pixels.double()
    # patch embedding as a matrix product over unfolded patches, row-major over the grid
    patches = x.unfold(2, p, p).unfold(3, p, p)  # (b, c, gh, gw, p, p)
    patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(b, grid * grid, -1)
    w = sd["embeddings.patch_embedding.weight"].reshape(48, -1)
    tokens = patches @ w.T + sd["embeddings.patch_embedding.bias"]
    cls = sd["embeddings.class_embedding"].expand(b, 1, 48)
    h = torch.cat([cls, tokens], 1) + sd["embeddings.position_embedding"]
    states = [h]
    heads, d = TINY["num_attention_heads"], 48 // TINY["num_attention_heads"]
    for i in range(TINY["num_hidden_layers"]):
        k = f"encoder.layers.{i}."
        y = _rms(h, sd[k + "norm1.weight"])
        qkv = y @ sd[k + "attn.qkv.weight"].T
        q, kk, v = qkv[..., :48], qkv[..., 48:96], qkv[..., 96:]
        q = _rms(q, sd[k + "attn.q_norm.weight"])
        kk = _rms(kk, sd[k + "attn.k_norm.weight"])
        outs = []
        for hd in range(heads):
            s = slice(hd * d, (hd + 1) * d)
            att = torch.softmax(q[..., s] @ kk[..., s].transpose(1, 2) / math.sqrt(d), dim=-1)
            outs.append(att @ v[..., s])
        a = torch.cat(outs, -1) @ sd[k + "attn.proj.weight"].T + sd[k + "attn.proj.bias"]
        h = h + a * sd[k + "ls1"]
        y = _rms(h, sd[k + "norm2.weight"])
        m = torch.nn.functional.gelu(y @ sd[k + "mlp.fc1.weight"].T + sd[k + "mlp.fc1.bias"])
        h = h + (m @ sd[k + "mlp.fc2.weight"].T + sd[k + "mlp.fc2.bias"]) * sd[k + "ls2"]
        states.append(h)
    return states


def test_hidden_states_equal_the_architecture_computed_by_hand(tower) -> None:
    pixels = torch.randn(2, 3, 56, 56, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = tower(pixel_values=pixels).hidden_states
    expected = _by_hand(tower, pixels)
    assert len(ours) == len(expected) == TINY["num_hidden_layers"] + 1
    for got, want in zip(ours, expected, strict=True):
        torch.testing.assert_close(got.double(), want, atol=2e-4, rtol=1e-4)


def test_wrong_input_size_and_bad_configs_are_named() -> None:
    model = InternVisionModel(InternConfig.from_dict(TINY))
    with pytest.raises(ValueError, match="trained for 17"):
        model(pixel_values=torch.zeros(1, 3, 70, 70))
    with pytest.raises(ValueError, match="divisible"):
        InternConfig.from_dict(TINY | {"num_attention_heads": 5})
    with pytest.raises(ValueError, match="multiple of patch_size"):
        InternConfig.from_dict(TINY | {"image_size": 60})
