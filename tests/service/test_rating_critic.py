"""A critic serving a rating checkpoint (VideoScore2 layout, tiny): both fronts, repeatable."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from lift.common.v1 import common_pb2
from lift.critic.v1 import critic_pb2, critic_pb2_grpc
from lift.critique import DIMENSIONS, Label, from_json, from_proto
from tests.service.conftest import RunningCritic, start_critic
from tools.processes import free_port, wait_ready

PROMPT = "a red ball rolls across green grass"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lift.services.critic.backends.vlm.tiny import write_tiny_critic

    return write_tiny_critic(tmp_path_factory.mktemp("tiny-vs2"), family="qwen2_5_vl")


@pytest.fixture(scope="module")
def critic(model_dir: Path) -> Iterator[RunningCritic]:
    running, stop = start_critic(
        backend="vlm", model=model_dir, templates="videoscore2", batch_max_wait_ms=20
    )
    yield running
    stop()


@pytest.fixture(scope="module")
def stub(critic: RunningCritic) -> Iterator[critic_pb2_grpc.CriticServiceStub]:
    with grpc.insecure_channel(critic.grpc_target) as channel:
        yield critic_pb2_grpc.CriticServiceStub(channel)


def _assert_rated(critique) -> None:
    assert [d.name for d in critique.dimensions] == list(DIMENSIONS)
    for d in critique.dimensions:
        assert d.label in (Label.GOOD, Label.NORMAL, Label.BAD)
        assert d.score is not None and 0.0 <= d.score <= 1.0
        p = d.probabilities
        assert p is not None and abs(p.good + p.normal + p.bad - 1) < 1e-5
        assert d.label == p.most_likely()
    reasons = {d.reasons for d in critique.dimensions}
    assert len(reasons) == 1  # one answer: the rationale after all three scores
    (only,) = reasons
    assert len(only) == 1 and only[0].strip()


def test_critique_over_both_fronts_is_rated_and_byte_identical(stub, critic, mp4s) -> None:
    req = critic_pb2.CritiqueRequest(
        video=common_pb2.VideoSource(data=mp4s["clean"]), prompt=PROMPT
    )
    first = stub.Critique(req, timeout=60)
    again = stub.Critique(req, timeout=60)
    assert first.SerializeToString(deterministic=True) == again.SerializeToString(
        deterministic=True
    )
    via_grpc = from_proto(first.critique)
    _assert_rated(via_grpc)
    with httpx.Client(base_url=critic.http_url, timeout=60) as http:

        def post() -> bytes:
            r = http.post(
                "/v1/critiques", files={"video": ("v.mp4", mp4s["clean"])}, data={"prompt": PROMPT}
            )
            assert r.status_code == 200, r.text
            return r.content

        body = post()
        assert post() == body
    via_http = from_json(json.loads(body))
    _assert_rated(via_http)
    for a, b in zip(via_http.dimensions, via_grpc.dimensions, strict=True):
        assert a.label == b.label and a.reasons == b.reasons
        assert a.score == pytest.approx(b.score, abs=1e-6)


def test_score_equals_critique_without_reasons_on_both_fronts(stub, critic, mp4s) -> None:
    names = ["clean", "flicker", "blur"]
    req = critic_pb2.ScoreRequest(
        items=[
            critic_pb2.ScoreItem(video=common_pb2.VideoSource(data=mp4s[n]), prompt=PROMPT)
            for n in names
        ]
    )
    scored = [from_proto(r.critique) for r in stub.Score(req, timeout=60).results]
    with httpx.Client(base_url=critic.http_url, timeout=60) as http:
        r = http.post(
            "/v1/scores",
            json={
                "items": [
                    {"video_b64": base64.b64encode(mp4s[n]).decode(), "prompt": PROMPT}
                    for n in names
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


def test_cli_serves_the_videoscore2_preset(model_dir: Path, mp4s, tmp_path: Path) -> None:
    grpc_port, http_port = free_port(), free_port()
    cmd = [sys.executable, "-m", "lift.cli.main", "critic", "serve", "--backend", "vlm"]
    cmd += ["--model", str(model_dir), "--templates", "videoscore2"]
    cmd += ["--grpc-port", str(grpc_port), "--http-port", str(http_port)]
    env = {**os.environ, "LIFT_CRITIC_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path)
    try:
        wait_ready(proc, f"http://127.0.0.1:{http_port}/readyz", "critic", timeout_s=120)
        r = httpx.post(
            f"http://127.0.0.1:{http_port}/v1/critiques",
            files={"video": ("v.mp4", mp4s["flicker"])},
            data={"prompt": PROMPT},
            timeout=60,
        )
        assert r.status_code == 200, r.text
        _assert_rated(from_json(r.json()))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_a_broken_rating_template_is_refused_at_start(model_dir: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from lift.cli.main import app
    from lift.templates import PRESETS

    broken = tmp_path / "broken.toml"
    text = (PRESETS / "videoscore2.toml").read_text(encoding="utf-8")
    broken.write_text(text.replace("max = 5", "max = 12"), encoding="utf-8")
    args = ["critic", "serve", "--backend", "vlm", "--model", str(model_dir)]
    args += ["--templates", str(broken), "--grpc-port", "0", "--http-port", "0"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0
    assert "0 <= min < max <= 9" in " ".join((result.stderr or result.output).split())
