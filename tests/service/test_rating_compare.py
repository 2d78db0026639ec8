"""Compare over both fronts on a critic serving the tiny Qwen2.5-VL with --templates unifiedreward.

UnifiedReward judges pairs natively ([rating.pairwise]): the overall preference is the
model's own pairwise answer (both orders averaged); dimensions carry no preference.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import httpx
import pytest

from lift.critic.v1 import critic_pb2_grpc
from lift.critique import comparison_from_proto
from lift.services.critic.backends.vlm.protocols.rating import PAIRWISE_METHOD
from tests.service.conftest import RunningCritic, start_critic
from tests.service.test_compare import _check_pair, _grpc, _http


@pytest.fixture(scope="module")
def critic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCritic]:
    from lift.services.critic.backends.vlm.tiny import write_tiny_critic

    model_dir = write_tiny_critic(tmp_path_factory.mktemp("tiny-ur"), family="qwen2_5_vl")
    running, stop = start_critic(
        backend="vlm", model=model_dir, templates="unifiedreward", batch_max_wait_ms=20
    )
    yield running
    stop()


@pytest.fixture(scope="module")
def stub(critic: RunningCritic) -> Iterator[critic_pb2_grpc.CriticServiceStub]:
    with grpc.insecure_channel(critic.grpc_target) as channel:
        yield critic_pb2_grpc.CriticServiceStub(channel)


@pytest.fixture(scope="module")
def http(critic: RunningCritic) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=critic.http_url, timeout=120) as client:
        yield client


def test_unifiedreward_compares_natively_on_both_fronts(stub, http, mp4s) -> None:
    # byte-identical repeats on each front, the same answer on both, a<->b swap symmetry
    c, body = _check_pair(stub, http, mp4s["clean"], mp4s["blur"])
    assert c.method == PAIRWISE_METHOD and body["method"] == PAIRWISE_METHOD
    assert all(not d.preference.compared for d in c.dimensions)  # overall only
    o = c.overall
    assert o.prob_a is not None and o.prob_b is not None and o.prob_tie is not None
    assert o.prob_a + o.prob_b + o.prob_tie == pytest.approx(1.0, abs=1e-5)
    assert body["overall"] == {"prob_a": o.prob_a, "prob_b": o.prob_b, "prob_tie": o.prob_tie}
    info = http.get("/v1/info").json()
    assert info["protocol"] == "rating"


def test_the_same_video_twice_prefers_neither(stub, http, mp4s) -> None:
    c = comparison_from_proto(_grpc(stub, mp4s["clean"], mp4s["clean"]).comparison)
    assert c.overall.prob_a == c.overall.prob_b and c.overall.prob_tie is not None
    body = _http(http, mp4s["clean"], mp4s["clean"]).json()
    assert body["overall"]["prob_a"] == body["overall"]["prob_b"]
