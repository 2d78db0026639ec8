"""The LiFT objectives against hand computations on tiny tensors."""

from __future__ import annotations

import pytest
import torch

from lift.services.trainer import losses


def test_reward_weighted_matches_hand_computation() -> None:
    gen = torch.tensor([1.0, 2.0, 4.0])
    r = torch.tensor([0.9, 0.2, 0.05])
    real = torch.tensor([3.0, 5.0])
    # mean(r*L) = (0.9 + 0.4 + 0.2) / 3 = 0.5 ; λ * mean(real) = 0.5 * 4 = 2
    got = losses.reward_weighted(gen, r, real, real_weight=0.5)
    assert got.item() == pytest.approx(0.5 + 2.0)
    assert losses.reward_weighted(gen, r).item() == pytest.approx(0.5)
    assert losses.reward_weighted(gen, r, real, real_weight=0.0).item() == pytest.approx(0.5)


def test_rejection_sampling_keeps_only_clips_good_everywhere() -> None:
    gen = torch.tensor([1.0, 2.0, 4.0, 8.0])
    keep = torch.tensor([True, False, True, False])
    real = torch.tensor([6.0])
    # mean(L over kept) = (1 + 4) / 2 = 2.5 ; λ = 1 -> + 6
    assert losses.rejection_sampling(gen, keep, real, 1.0).item() == pytest.approx(8.5)
    nothing = torch.zeros(4, dtype=torch.bool)
    assert losses.rejection_sampling(gen, nothing, real, 1.0).item() == pytest.approx(6.0)
    assert losses.rejection_sampling(gen, nothing).item() == 0.0


def test_gradients_flow_in_proportion_to_reward() -> None:
    gen = torch.tensor([1.0, 1.0], requires_grad=True)
    losses.reward_weighted(gen, torch.tensor([0.9, 0.05])).backward()
    assert gen.grad is not None
    assert gen.grad.tolist() == pytest.approx([0.45, 0.025])


def test_shape_mismatch_is_refused() -> None:
    with pytest.raises(ValueError):
        losses.reward_weighted(torch.ones(3), torch.ones(2))
    with pytest.raises(ValueError):
        losses.rejection_sampling(torch.ones(3), torch.ones(2, dtype=torch.bool))
