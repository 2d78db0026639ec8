"""The trainer's model: the adapter trains, the base stays frozen, adapters export in peft form."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lift.errors import InvalidInput
from lift.services.generator.adapters import parse_adapter
from lift.services.trainer import losses
from lift.services.trainer.config import LoraConfigModel
from lift.services.trainer.policy import Policy


@pytest.fixture(scope="module")
def policy(tiny_generator_dir: Path) -> Policy:
    return Policy(tiny_generator_dir, LoraConfigModel(rank=4, alpha=4))


def test_one_step_changes_trainable_and_not_frozen(policy: Policy) -> None:
    frozen_before = {n: p.clone() for n, p in policy.frozen().items()}
    trainable_before = {n: p.clone() for n, p in policy.trainable().items()}
    vae_before = [p.clone() for p in policy.vae.parameters()]
    assert trainable_before and all("lora_" in n for n in trainable_before)
    videos = np.random.default_rng(0).integers(0, 256, (2, 9, 32, 32, 3), dtype=np.uint8)
    latents = policy.encode(videos)
    embeds = policy.embed(["a dog", "a cat"])
    opt = torch.optim.AdamW(policy.trainable().values(), lr=1e-2)
    per_example = policy.losses(latents, embeds, torch.Generator().manual_seed(0))
    assert per_example.shape == (2,)
    losses.reward_weighted(per_example, torch.tensor([0.9, 0.05])).backward()
    opt.step()
    assert all(
        not torch.equal(p, trainable_before[n])
        for n, p in policy.trainable().items()
        if "lora_B" in n or "lora_A" in n
    )
    assert all(torch.equal(p, frozen_before[n]) for n, p in policy.frozen().items())
    assert all(torch.equal(a, b) for a, b in zip(vae_before, policy.vae.parameters(), strict=True))


def test_loss_is_reproducible_from_the_generator_seed(policy: Policy) -> None:
    videos = np.full((1, 9, 32, 32, 3), 128, np.uint8)
    latents, embeds = policy.encode(videos), policy.embed(["a dog"])
    with torch.no_grad():
        a = policy.losses(latents, embeds, torch.Generator().manual_seed(3))
        b = policy.losses(latents, embeds, torch.Generator().manual_seed(3))
        c = policy.losses(latents, embeds, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_exported_adapter_is_what_the_generator_accepts(policy: Policy) -> None:
    files = policy.adapter_files()
    parsed = parse_adapter(files, policy.denoiser)
    assert parsed.rank == 4
    assert json.loads(files.config_json or "{}")["r"] == 4


def test_targets_that_name_no_linear_layer_are_refused(tiny_generator_dir: Path) -> None:
    with pytest.raises(InvalidInput, match=r"lora\.target_modules"):
        Policy(tiny_generator_dir, LoraConfigModel(target_modules=["nothing_here"]))
    with pytest.raises(InvalidInput, match="Conv2d"):
        Policy(tiny_generator_dir, LoraConfigModel(target_modules=["proj"]))
