"""The trainer's critic calls: more items than the critic takes in one Score go in several calls."""

from __future__ import annotations

import threading
from typing import Any

from lift.critique import Critique, ModelInfo, VideoInfo
from lift.services.trainer.config import EndpointConfig
from lift.services.trainer.remote import ReplicaPool, Services

_MODEL = ModelInfo(backend="signal", name="fake", version="0")
_VIDEO = VideoInfo(frames=2, fps=8.0, duration_s=0.25, width=8, height=8, frames_analysed=2)


class _FakeCritic:
    """Takes at most ``limit`` items per Score, as the real critic refuses more."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.calls: list[int] = []
        self.info_calls = 0

    def info(self) -> dict[str, Any]:
        self.info_calls += 1
        return {"limits": {"max_batch_items": self.limit}}

    def score(self, items: list[tuple[bytes, str]]) -> list[Critique]:
        assert len(items) <= self.limit, f"{len(items)} items; the limit is {self.limit}"
        self.calls.append(len(items))
        return [Critique((), None, _MODEL, _VIDEO, prompt=p) for _, p in items]

    def close(self) -> None:
        pass


def test_a_large_evaluation_is_scored_in_calls_the_critic_accepts() -> None:
    endpoint = EndpointConfig(address="localhost:1", retries=0)
    services = Services(endpoint, endpoint, threading.Event())
    fake = _FakeCritic(limit=64)
    services.critic.close()
    services.critic = ReplicaPool("critic", endpoint, threading.Event(), lambda _: fake)  # type: ignore[arg-type,return-value]
    items = [(b"v", f"prompt {i}") for i in range(150)]
    out = services.score(items)
    assert [c.prompt for c in out] == [p for _, p in items]  # every item, in order
    assert fake.calls == [64, 64, 22]
    services.score(items[:3])
    assert fake.info_calls == 1  # the limit is asked once
    services.close()
