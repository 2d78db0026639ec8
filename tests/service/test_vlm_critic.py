"""A critic serving the tiny VLM: both fronts, both modes, repeatable to the byte."""

from __future__ import annotations

import base64
import concurrent.futures
import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from lift.client import CriticClient
from lift.common.v1 import common_pb2
from lift.critic.v1 import critic_pb2, critic_pb2_grpc
from lift.critique import DIMENSIONS, from_json, from_proto
from tests.service.conftest import RunningCritic, start_critic

PROMPT = "a red ball rolls across green grass"


@pytest.fixture(scope="module")
def vlm_critic(tiny_critic_dir: Path) -> Iterator[RunningCritic]:
    running, stop = start_critic(
        backend="vlm", model=tiny_critic_dir, batch_max_size=8, batch_max_wait_ms=50
    )
    yield running
    stop()


@pytest.fixture(scope="module")
def vstub(vlm_critic: RunningCritic) -> Iterator[critic_pb2_grpc.CriticServiceStub]:
    with grpc.insecure_channel(vlm_critic.grpc_target) as channel:
        yield critic_pb2_grpc.CriticServiceStub(channel)


@pytest.fixture(scope="module")
def vhttp(vlm_critic: RunningCritic) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=vlm_critic.http_url, timeout=60) as client:
        yield client


def _assert_full(critique) -> None:
    assert [d.name for d in critique.dimensions] == list(DIMENSIONS)
    for d in critique.dimensions:
        p = d.probabilities
        assert p is not None and abs(p.good + p.normal + p.bad - 1) < 1e-5
        assert d.reasons and d.reasons[0].strip()
    assert critique.model.backend == "vlm"
    assert critique.reward is not None


def test_critique_over_both_fronts_is_complete_and_identical(vstub, vhttp, mp4s) -> None:
    req = critic_pb2.CritiqueRequest(
        video=common_pb2.VideoSource(data=mp4s["clean"]), prompt=PROMPT
    )
    first = vstub.Critique(req, timeout=60)
    again = vstub.Critique(req, timeout=60)
    assert first.SerializeToString(deterministic=True) == again.SerializeToString(
        deterministic=True
    )
    via_grpc = from_proto(first.critique)
    _assert_full(via_grpc)

    def post() -> bytes:
        r = vhttp.post(
            "/v1/critiques", files={"video": ("v.mp4", mp4s["clean"])}, data={"prompt": PROMPT}
        )
        assert r.status_code == 200, r.text
        return r.content

    body = post()
    assert post() == body  # byte-identical on a repeated call
    via_http = from_json(json.loads(body))
    _assert_full(via_http)
    for a, b in zip(via_http.dimensions, via_grpc.dimensions, strict=True):
        assert a.label == b.label and a.reasons == b.reasons
        assert a.probabilities.good == pytest.approx(b.probabilities.good, abs=1e-6)


def test_score_has_probabilities_without_reasons_equal_to_critique(vstub, vhttp, mp4s) -> None:
    names = ["clean", "flicker", "frozen"]
    req = critic_pb2.ScoreRequest(
        items=[
            critic_pb2.ScoreItem(video=common_pb2.VideoSource(data=mp4s[n]), prompt=PROMPT)
            for n in names
        ]
    )
    scored = [from_proto(r.critique) for r in vstub.Score(req, timeout=60).results]
    r = vhttp.post(
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
            vstub.Critique(
                critic_pb2.CritiqueRequest(
                    video=common_pb2.VideoSource(data=mp4s[name]), prompt=PROMPT
                ),
                timeout=60,
            ).critique
        )
        for ds, dh, dc in zip(s.dimensions, h.dimensions, full.dimensions, strict=True):
            assert ds.reasons == () and dh.reasons == ()
            assert ds.label == dh.label == dc.label
            assert ds.probabilities.good == pytest.approx(dc.probabilities.good, abs=1e-5)


def test_concurrent_requests_are_micro_batched_and_correct(vlm_critic, vstub, mp4s) -> None:
    from lift.services.critic import metrics

    def histogram(suffix: str) -> float:
        return sum(
            s.value
            for m in metrics.MICRO_BATCH_SIZE.collect()
            for s in m.samples
            if s.name.endswith(suffix)
        )

    alone = {
        n: from_proto(
            vstub.Critique(
                critic_pb2.CritiqueRequest(
                    video=common_pb2.VideoSource(data=mp4s[n]), prompt=PROMPT
                ),
                timeout=60,
            ).critique
        )
        for n in ("clean", "blur")
    }
    before_count, before_total = histogram("_count"), histogram("_sum")
    with CriticClient(vlm_critic.grpc_target) as client:
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            names = ["clean", "blur"] * 3
            results = list(pool.map(lambda n: client.critique(mp4s[n], PROMPT), names))
    batches = histogram("_count") - before_count
    assert histogram("_sum") - before_total == 6
    assert batches < 6  # some requests shared a model call
    for n, c in zip(names, results, strict=True):
        for a, b in zip(c.dimensions, alone[n].dimensions, strict=True):
            assert a.label == b.label and a.reasons == b.reasons


def test_info_reports_the_vlm(vhttp) -> None:
    info = vhttp.get("/v1/info").json()
    assert info["model"]["backend"] == "vlm"
    assert info["assessed_dimensions"] == [d.value for d in DIMENSIONS]


def test_vlm_without_a_model_is_refused_at_start() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="needs a model"):
        start_critic(backend="vlm")
