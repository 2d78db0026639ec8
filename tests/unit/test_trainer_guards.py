"""The reward-hacking watch and the confidence intervals it is reported with."""

from __future__ import annotations

import pytest

from lift.services.trainer.config import GuardConfig
from lift.services.trainer.guards import HackingWatch
from lift.services.trainer.stats import mean_ci95, t975


def _feed(watch: HackingWatch, rewards: list[float], dynamic: list[float]) -> list:
    fired = []
    for i, (r, d) in enumerate(zip(rewards, dynamic, strict=True)):
        fired += watch.observe(i + 1, r, {"dynamic_degree": d, "real_loss": 1.0})
    return fired


def test_warns_when_reward_rises_while_dynamic_degree_falls() -> None:
    n = 40
    rewards = [0.2 + 0.5 * i / n for i in range(n)]
    dynamic = [0.9 - 0.8 * i / n for i in range(n)]
    fired = _feed(HackingWatch(GuardConfig(window=5)), rewards, dynamic)
    assert [w.guard for w in fired] == ["dynamic_degree"]  # once, not every step
    assert "reward rose" in fired[0].message()


def test_silent_when_both_rise_or_reward_is_flat() -> None:
    n = 40
    up = [0.2 + 0.5 * i / n for i in range(n)]
    assert (
        _feed(HackingWatch(GuardConfig(window=5)), up, [0.3 + 0.5 * i / n for i in range(n)]) == []
    )
    flat = [0.3] * n
    assert (
        _feed(HackingWatch(GuardConfig(window=5)), flat, [0.9 - 0.8 * i / n for i in range(n)])
        == []
    )


def test_real_loss_rising_is_a_warning() -> None:
    watch = HackingWatch(GuardConfig(window=3))
    fired = []
    for i in range(20):
        fired += watch.observe(i, 0.1 + 0.05 * i, {"dynamic_degree": 0.5, "real_loss": 1.0 + i})
    assert [w.guard for w in fired] == ["real_loss"]


def test_confidence_interval() -> None:
    mean, half = mean_ci95([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5
    # sd = 1.29099, n = 4, t(3) = 3.182
    assert half == pytest.approx(3.182 * 1.2909944 / 2, rel=1e-4)
    assert mean_ci95([5.0])[1] == float("inf")
    assert t975(1000) == pytest.approx(1.9623, abs=1e-3)
