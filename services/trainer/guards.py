"""Reward-hacking watch: the reward rising while a signal it does not optimise worsens.

Guards are measured every step beside the reward: the critic's dynamic degree of
the generated clips (a policy that learns to sit still can please a smoothness
judge) and the diffusion loss on real clips (a policy drifting away from real
video). The watch compares the mean of the first ``window`` steps with the mean
of the last ``window``; when the reward rose by at least ``min_reward_rise`` and a
guard worsened by more than ``max_drop`` (relative), it warns once, and again
only after that guard recovered.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from lift.runs import StepMetrics
from lift.services.trainer.config import GuardConfig

GUARDS: dict[str, int] = {"dynamic_degree": +1, "real_loss": -1}
"""Guard name -> direction (+1: higher is healthier, -1: lower is healthier).

The names are the keys of :meth:`lift.runs.StepMetrics.guards`."""


@dataclass(frozen=True)
class GuardWarning:
    """A guard worsening while the reward rises."""

    guard: str
    step: int
    reward_start: float
    reward_now: float
    guard_start: float
    guard_now: float
    worsening: float

    def message(self) -> str:
        """One sentence for events and logs."""
        return (
            f"possible reward hacking at step {self.step}: the reward rose from "
            f"{self.reward_start:.3f} to {self.reward_now:.3f} while {self.guard} went from "
            f"{self.guard_start:.3f} to {self.guard_now:.3f} ({self.worsening:.0%} worse)"
        )


class HackingWatch:
    """Feeds on (step, reward, guards) and returns the warnings that step raises."""

    def __init__(self, config: GuardConfig) -> None:
        self.config = config
        self.first: dict[str, list[float]] = {}
        self.last: dict[str, deque[float]] = {}
        self.firing: set[str] = set()

    def _add(self, name: str, value: float | None) -> None:
        if value is None or not math.isfinite(value):
            return
        first = self.first.setdefault(name, [])
        if len(first) < self.config.window:
            first.append(value)
        self.last.setdefault(name, deque(maxlen=self.config.window)).append(value)

    def _ends(self, name: str) -> tuple[float, float] | None:
        first, last = self.first.get(name, []), self.last.get(name)
        if last is None or len(first) < self.config.window or len(last) < self.config.window:
            return None
        return sum(first) / len(first), sum(last) / len(last)

    def observe_metrics(self, m: StepMetrics) -> list[GuardWarning]:
        """Record one step from its metrics; warnings that start firing at this step."""
        return self.observe(m.step, m.reward, m.guards())

    def observe(
        self, step: int, reward: float, guards: dict[str, float | None]
    ) -> list[GuardWarning]:
        """Record one step; warnings that start firing at this step."""
        self._add("reward", reward)
        for name, value in guards.items():
            self._add(name, value)
        reward_ends = self._ends("reward")
        if reward_ends is None:
            return []
        rising = reward_ends[1] - reward_ends[0] >= self.config.min_reward_rise
        out = []
        for name, direction in GUARDS.items():
            ends = self._ends(name)
            if ends is None:
                continue
            start, now = ends
            worsening = direction * (start - now) / max(abs(start), 1e-6)
            if rising and worsening > self.config.max_drop:
                if name not in self.firing:
                    self.firing.add(name)
                    out.append(GuardWarning(name, step, *reward_ends, start, now, worsening))
            else:
                self.firing.discard(name)
        return out
