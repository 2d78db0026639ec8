"""A critic serving the tiny VideoReward (reward_head protocol): both fronts, repeatable to the byte."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from lift.common.v1 import common_pb2
from lift.critic.v1 import critic_pb2, critic_pb2_grpc
from lift.critique import DIMENSIONS, from_json, from_proto
from tests.service.conftest import RunningCritic, start_critic

PROMPT = "a red ball rolls across green grass"


@pytest.fixture(scope="module")
def tiny_va(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lift.services.critic.backends.vlm.tiny_videoalign import write_tiny_videoalign

    return write_tiny_videoalign(tmp_path_factory.mktemp("tiny-videoalign"))


@pytest.fixture(scope="module")
def va_critic(tiny_va: Path) -> Iterator[RunningCritic]:
    # protocol auto: the layout says reward_head
    running, stop = start_critic(
        backend="vlm", model=tiny_va, batch_max_size=8, batch_max_wait_ms=50
    )
    yield running
    stop()


@pytest.fixture(scope="module")
def stub(va_critic: RunningCritic) -> Iterator[critic_pb2_grpc.CriticServiceStub]:
    with grpc.insecure_channel(va_critic.grpc_target) as channel:
        yield critic_pb2_grpc.CriticServiceStub(channel)


@pytest.fixture(scope="module")
def http(va_critic: RunningCritic) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=va_critic.http_url, timeout=60) as client:
        yield client


def test_critique_over_both_fronts_is_complete_and_byte_identical(stub, http, mp4s) -> None:
    req = critic_pb2.CritiqueRequest(
        video=common_pb2.VideoSource(data=mp4s["clean"]), prompt=PROMPT
    )
    first = stub.Critique(req, timeout=60)
    again = stub.Critique(req, timeout=60)
    assert first.SerializeToString(deterministic=True) == again.SerializeToString(
        deterministic=True
    )
    via_grpc = from_proto(first.critique)
    assert [d.name for d in via_grpc.dimensions] == list(DIMENSIONS)
    assert via_grpc.reward is not None and "reward_head" in via_grpc.model.name
    for d in via_grpc.dimensions:
        assert d.probabilities is not None and d.score is not None
        assert d.reasons and "VideoReward" in d.reasons[0] and "normalised" in d.reasons[0]

    def post() -> bytes:
        r = http.post(
            "/v1/critiques", files={"video": ("v.mp4", mp4s["clean"])}, data={"prompt": PROMPT}
        )
        assert r.status_code == 200, r.text
        return r.content

    body = post()
    assert post() == body
    via_http = from_json(json.loads(body))
    for a, b in zip(via_http.dimensions, via_grpc.dimensions, strict=True):
        assert a.label == b.label and a.reasons == b.reasons
        assert a.probabilities.good == pytest.approx(b.probabilities.good, abs=1e-6)


def test_score_matches_critique_without_reasons(stub, http, mp4s) -> None:
    names = ["clean", "flicker", "blur"]
    req = critic_pb2.ScoreRequest(
        items=[
            critic_pb2.ScoreItem(video=common_pb2.VideoSource(data=mp4s[n]), prompt=PROMPT)
            for n in names
        ]
    )
    scored = [from_proto(r.critique) for r in stub.Score(req, timeout=60).results]
    assert [from_proto(r.critique) for r in stub.Score(req, timeout=60).results] == scored
    r = http.post(
        "/v1/scores",
        json={
            "items": [
                {"video_b64": base64.b64encode(mp4s[n]).decode(), "prompt": PROMPT} for n in names
            ]
        },
    )
    assert r.status_code == 200, r.text
    via_http = [from_json(x["critique"]) for x in r.json()["results"]]
    for name, s, h in zip(names, scored, via_http, strict=True):
        full = from_proto(
            stub.Critique(
                critic_pb2.CritiqueRequest(
                    video=common_pb2.VideoSource(data=mp4s[name]), prompt=PROMPT
                ),
                timeout=60,
            ).critique
        )
        for ds, dh, dc in zip(s.dimensions, h.dimensions, full.dimensions, strict=True):
            assert ds.reasons == () and dh.reasons == ()
            assert ds.label == dh.label == dc.label
            assert ds.score == pytest.approx(dc.score, abs=1e-5)
            assert dh.score == pytest.approx(dc.score, abs=1e-5)


def test_compare_on_both_fronts_byte_identical_and_swap_symmetric(stub, http, mp4s) -> None:
    from lift.critique import comparison_from_json, comparison_from_proto

    def grpc_compare(a: bytes, b: bytes) -> critic_pb2.CompareResponse:
        req = critic_pb2.CompareRequest(
            prompt=PROMPT, a=common_pb2.VideoSource(data=a), b=common_pb2.VideoSource(data=b)
        )
        return stub.Compare(req, timeout=60)

    def http_compare(a: bytes, b: bytes) -> httpx.Response:
        files = {"video_a": ("a.mp4", a), "video_b": ("b.mp4", b)}
        return http.post("/v1/comparisons", files=files, data={"prompt": PROMPT})

    a, b = mp4s["clean"], mp4s["blur"]
    first = grpc_compare(a, b)
    assert first.SerializeToString(deterministic=True) == grpc_compare(a, b).SerializeToString(
        deterministic=True
    )
    r1, r2 = http_compare(a, b), http_compare(a, b)
    assert r1.status_code == 200, r1.text
    assert r1.content == r2.content
    via_grpc = comparison_from_proto(first.comparison)
    via_http = comparison_from_json(r1.json())
    assert via_grpc.method.startswith("videoreward_bradley_terry")
    swapped = comparison_from_proto(grpc_compare(b, a).comparison)
    for x, y, z in zip(via_grpc.dimensions, via_http.dimensions, swapped.dimensions, strict=True):
        assert x.preference.prob_tie is not None
        assert x.preference.prob_a == pytest.approx(y.preference.prob_a, abs=1e-6)
        assert x.preference == z.preference.swapped()
    info = http.get("/v1/info").json()
    assert "reward_head" in json.dumps(info)
