"""lift.rewards against a running signal critic: batches, failed items, both fronts, TRL, RL.

The signal critic's ``video_fidelity`` score falls as noise rises (a clean clip is
mostly "good", sigma of 5 grey levels or more mostly "bad"), so noise is the property
the reward-training test learns to remove.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lift.clients.critic import CriticError
from lift.rewards import AsyncCriticReward, CriticReward, y4m_size
from tests.service.conftest import RunningCritic, start_critic

PROMPT = "a soft pattern drifts to the left"
T, H, W = 16, 96, 128
MAX_PROMPT = 200


def _pattern() -> np.ndarray:
    """(T, C, H, W) float32 in [-1, 1]: a real picture (a Big Buck Bunny frame) panning 2 px a frame.

    Real footage, not a synthetic texture: the signal critic judges fidelity
    absolutely, and a smooth sinusoid has no sharp detail (it reads as blurred).
    """
    import av
    import cv2

    path = Path(__file__).resolve().parents[1] / "data" / "real" / "bigbuckbunny.mp4"
    with av.open(str(path)) as c:
        frame = next(f for i, f in enumerate(c.decode(video=0)) if i == 60).to_ndarray(
            format="rgb24"
        )
    big = cv2.resize(frame, (W * 2, H * 2), interpolation=cv2.INTER_AREA)
    y0 = (big.shape[0] - H) // 2
    crops = [big[y0 : y0 + H, 2 * t : 2 * t + W] for t in range(T)]
    return np.stack(crops).transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0


def _noisy(sigmas: list[float], seed: int = 0) -> np.ndarray:
    """(B, T, C, H, W) float32: the pattern plus Gaussian noise of each sigma ([-1, 1] units)."""
    rng = np.random.default_rng(seed)
    base = _pattern()
    out = [np.clip(base + s * rng.standard_normal(base.shape), -1, 1) for s in sigmas]
    return np.stack(out).astype(np.float32)


@pytest.fixture(scope="module")
def signal_critic() -> Iterator[RunningCritic]:
    limit = y4m_size(T, H, W, 8.0) + 1024  # the pattern fits; a larger video does not
    running, stop = start_critic(
        workers=2, max_queue=8, max_prompt_chars=MAX_PROMPT, max_video_bytes=limit
    )
    yield running
    stop()


def test_a_batch_is_scored_in_one_call_and_failed_items_are_reported(
    signal_critic: RunningCritic,
) -> None:
    big = np.zeros((T, 3, H * 2, W * 2), np.float32)  # over the critic's max_video_bytes
    videos = [*_noisy([0.0, 0.1]), _noisy([0.0])[0], _noisy([0.0])[0], big]
    prompts = [PROMPT, PROMPT, "x" * (MAX_PROMPT + 1), "   ", PROMPT]
    with CriticReward(signal_critic.grpc_target, fallback=-1.0) as reward:
        rewards, info = reward(videos, prompts)
    assert rewards.shape == (5,) and rewards.dtype == np.float32
    assert info["calls"] == 1
    assert rewards[0] > 0.7 > 0.5 > rewards[1] >= 0  # the noisy clip scores clearly worse
    assert rewards[2:].tolist() == [-1.0, -1.0, -1.0]  # the fallback, never a good score
    assert info["failed"] == [False, False, True, True, True]
    errors = {e["index"]: e for e in info["errors"]}
    assert errors[2]["code"] == "INVALID_ARGUMENT" and "the limit is 200" in errors[2]["message"]
    assert errors[3]["code"] == "INVALID_ARGUMENT" and "prompt is empty" in errors[3]["message"]
    assert errors[4]["code"] == "INVALID_ARGUMENT" and "max_video_bytes" in errors[4]["message"]
    assert info["scorer"] == {"backend": "signal", "name": "lift-signal", "version": "2.0"}
    assert info["frames_sent"] == [T] * 4 + [T]
    assert info["fps"][:2] == [pytest.approx(8.0)] * 2 and info["frames_analysed"][0] == T
    assert info["dimensions"]["semantic_consistency"][0] is None  # the signal critic's limit
    assert info["critic_reward"][0] == pytest.approx(rewards[0], abs=1e-6)


def test_dimensions_weights_and_a_one_frame_video(signal_critic: RunningCritic) -> None:
    videos = [*_noisy([0.0, 0.05]), _noisy([0.0])[0][:1]]
    with CriticReward(
        signal_critic.grpc_target, weights={"video_fidelity": 1.0, "motion_smoothness": 1.0}
    ) as reward:
        rewards, info = reward(videos, [PROMPT] * 3)
    fid, mot = info["dimensions"]["video_fidelity"], info["dimensions"]["motion_smoothness"]
    assert rewards[:2].tolist() == pytest.approx(
        [(fid[i] + mot[i]) / 2 for i in range(2)], abs=1e-6
    )
    # One frame: motion is not assessed, so the weighted reward has no value: reported.
    assert info["failed"] == [False, False, True] and rewards[2] == 0.0
    assert info["errors"][0]["code"] == "UNASSESSED"
    assert "motion_smoothness was not assessed" in info["errors"][0]["message"]
    with pytest.raises(ValueError, match="does not assess"):
        CriticReward(signal_critic.grpc_target, dimensions=["semantic_consistency"])(
            videos, [PROMPT] * 3
        )


def test_http_front_and_asyncio_give_the_same_rewards(signal_critic: RunningCritic) -> None:
    videos = torch.from_numpy(_noisy([0.0, 0.03, 0.1]))  # a tensor, as a pipeline gives
    prompts = (PROMPT,) * 3
    with CriticReward(signal_critic.grpc_target, normalize="rank") as reward:
        via_grpc, _ = reward(videos, prompts)
    with CriticReward(signal_critic.http_url, normalize="rank") as reward:
        via_http, _ = reward(videos, prompts)
    assert via_grpc.tolist() == via_http.tolist() == [1.0, 0.5, 0.0]

    async def run() -> tuple[np.ndarray, dict]:
        async with AsyncCriticReward(signal_critic.grpc_target, normalize="rank") as reward:
            return await reward(videos, prompts)

    import asyncio

    via_async, info = asyncio.run(run())
    assert via_async.tolist() == via_grpc.tolist() and info["calls"] == 1


def test_a_batch_over_the_critics_message_limit_is_split() -> None:
    limit = y4m_size(T, H, W, 8.0) + 1024
    # Room for one video a message and a little: six in one request are refused for size.
    running, stop = start_critic(
        max_video_bytes=limit, max_message_bytes=limit + 2**20 + 1000, max_queue=8
    )
    try:
        videos = _noisy([0.0, 0.1] * 3)
        for server in (running.grpc_target, running.http_url):
            with CriticReward(server) as reward:
                rewards, info = reward(videos, [PROMPT] * 6)
            assert info["errors"] == [] and info["calls"] > 1
            assert (rewards[0::2] > 0.7).all() and (rewards[1::2] < 0.5).all()
    finally:
        stop()


def test_a_critic_that_is_down_raises() -> None:
    running, stop = start_critic()
    target = running.grpc_target
    stop()
    with CriticReward(target, timeout=5) as reward, pytest.raises(CriticError):
        reward(_noisy([0.0]), [PROMPT])


def test_trls_own_ddpo_reward_plumbing(signal_critic: RunningCritic) -> None:
    """TRL's DDPOTrainer.compute_rewards (its own code) drives the adapter."""
    ddpo = pytest.importorskip("trl.trainer.ddpo_trainer")
    with CriticReward(signal_critic.grpc_target) as reward:
        trainer = SimpleNamespace(
            reward_fn=reward.ddpo(),
            accelerator=SimpleNamespace(device=torch.device("cpu")),
        )
        videos = torch.from_numpy(_noisy([0.0, 0.1]))
        pairs = [[videos, (PROMPT, PROMPT), ({}, {})]]
        rewards, metadata = ddpo.DDPOTrainer.compute_rewards(trainer, pairs)
    (r,) = rewards
    assert isinstance(r, torch.Tensor) and r.shape == (2,) and r[0] > r[1]
    assert metadata[0]["scorer_version"] == "1.0"


def test_a_ddpo_style_loop_learns_to_remove_noise(signal_critic: RunningCritic) -> None:
    """REINFORCE on a one-parameter generator: log sigma of the noise it adds.

    Each step samples B videos with log sigma_i = mu + 0.5 eps_i, scores them with the
    adapter TRL's DDPO trainer would call, and follows the advantage-weighted
    log-likelihood (DDPO's loss without the ratio clipping). The critic is
    deterministic and the seed fixed, so the run is the same every time.
    """
    torch.manual_seed(0)
    base = torch.from_numpy(_pattern())
    mu = torch.nn.Parameter(torch.tensor(math.log(0.08)))  # noisy: the critic says "bad"
    opt = torch.optim.Adam([mu], lr=0.25)
    batch, spread = 8, 0.5

    def generate(log_sigma: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(log_sigma.shape[0], *base.shape)
        sigma = log_sigma.exp().view(-1, 1, 1, 1, 1)
        return (base + sigma * noise).clamp(-1, 1)  # (B, T, C, H, W) in [-1, 1]

    with CriticReward(
        signal_critic.grpc_target, dimensions=["video_fidelity"], normalize="batch"
    ) as reward:
        reward_fn = reward.ddpo()
        means = []
        for _ in range(8):
            log_sigma = (mu + spread * torch.randn(batch)).detach()
            videos = generate(log_sigma)
            advantages, info = reward_fn(videos, (PROMPT,) * batch, ({},) * batch)
            assert not any(info["failed"])
            means.append(float(np.mean(info["raw_rewards"])))
            logp = -0.5 * ((log_sigma - mu) / spread) ** 2
            loss = -(torch.as_tensor(advantages) * logp).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        # The policy's own video, before and after: the learnt one is far cleaner.
        plain = CriticReward(reward.client, dimensions=["video_fidelity"])
        before, _ = plain(generate(torch.tensor([math.log(0.08)])), [PROMPT])
        after, _ = plain(generate(mu.detach().view(1)), [PROMPT])
    assert mu.item() < math.log(0.03), mu.item()
    assert after[0] > before[0] + 0.5, (before, after)
    assert np.mean(means[-2:]) > np.mean(means[:2]) + 0.3, means
