"""The two LiFT objectives, as pure functions of per-example losses (unit-tested by hand).

``reward_weighted``: ``mean(r · L_gen) + λ · mean(L_real)`` (paper Eq. 3).
``rejection_sampling``: ``mean(L_gen over kept clips) + λ · mean(L_real)``, where a
clip is kept when the critic rated it good on every dimension it judged.
An absent term (no real clips, nothing kept) contributes zero.
"""

from __future__ import annotations

import torch


def reward_weighted(
    gen_losses: torch.Tensor,
    rewards: torch.Tensor,
    real_losses: torch.Tensor | None = None,
    real_weight: float = 1.0,
) -> torch.Tensor:
    """``mean(r_i · L_i) + λ · mean(L_real)``."""
    if gen_losses.shape != rewards.shape:
        raise ValueError(f"losses {tuple(gen_losses.shape)} and rewards {tuple(rewards.shape)}")
    loss = (rewards.to(gen_losses) * gen_losses).mean()
    return loss + _real_term(real_losses, real_weight, loss)


def rejection_sampling(
    gen_losses: torch.Tensor,
    keep: torch.Tensor,
    real_losses: torch.Tensor | None = None,
    real_weight: float = 1.0,
) -> torch.Tensor:
    """``mean(L_i for kept i) + λ · mean(L_real)``."""
    if gen_losses.shape != keep.shape:
        raise ValueError(f"losses {tuple(gen_losses.shape)} and mask {tuple(keep.shape)}")
    kept = gen_losses[keep.bool()]
    loss = kept.mean() if kept.numel() else gen_losses.sum() * 0.0
    return loss + _real_term(real_losses, real_weight, loss)


def _real_term(real: torch.Tensor | None, weight: float, like: torch.Tensor) -> torch.Tensor:
    if real is None or real.numel() == 0 or weight == 0:
        return like.new_zeros(())
    return weight * real.mean()
