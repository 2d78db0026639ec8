"""Both fronts of a running critic: happy paths, every bad input, and still serving after."""

from __future__ import annotations

import base64
import concurrent.futures
import json
import shutil
import subprocess
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lift.common.v1 import common_pb2
from lift.critic.v1 import critic_pb2, critic_pb2_grpc
from lift.critique import from_json, from_proto
from lift.runner import start_in_thread
from lift.services.critic.server import build_critic
from lift.services.critic.settings import CriticSettings
from tests.service.conftest import RunningCritic, start_critic
from tools.protogen import REPO_ROOT

PROMPT = "colourful shapes glide across a textured wall"


def _critique(stub, data: bytes, prompt: str = PROMPT, **kw):
    req = critic_pb2.CritiqueRequest(video=common_pb2.VideoSource(data=data), prompt=prompt)
    return stub.Critique(req, timeout=kw.get("timeout", 60))


def _assert_still_serving(stub, http: httpx.Client, mp4s: dict[str, bytes]) -> None:
    assert _critique(stub, mp4s["clean"]).critique.reward > 0.5
    r = http.post(
        "/v1/critiques", files={"video": ("v.mp4", mp4s["clean"])}, data={"prompt": PROMPT}
    )
    assert r.status_code == 200, r.text


def test_grpc_and_http_give_the_same_critique(stub, http, mp4s) -> None:
    via_grpc = from_proto(_critique(stub, mp4s["frozen"]).critique)
    r = http.post(
        "/v1/critiques", files={"video": ("f.mp4", mp4s["frozen"])}, data={"prompt": PROMPT}
    )
    assert r.status_code == 200
    body = r.json()
    assert [d["name"] for d in body["dimensions"]] == [
        "semantic_consistency",
        "motion_smoothness",
        "video_fidelity",
    ]
    via_http = from_json(body)
    assert via_http.dimensions == via_grpc.dimensions or all(
        a.label == b.label and a.issues == b.issues
        for a, b in zip(via_http.dimensions, via_grpc.dimensions, strict=True)
    )
    assert body["reward"] == pytest.approx(via_grpc.reward, abs=1e-5)
    motion = via_http.dimension("motion_smoothness")
    assert any(i.tag == "frozen_frames" for i in motion.issues)


def test_json_body_with_base64_and_uri(stub, http, mp4s, critic: RunningCritic) -> None:
    b64 = base64.b64encode(mp4s["blur"]).decode()
    r = http.post("/v1/critiques", json={"prompt": PROMPT, "video_b64": b64})
    assert r.status_code == 200
    assert any(i["tag"] == "blur" for d in r.json()["dimensions"] for i in d["issues"])
    path = critic.video_root / "clean.mp4"
    path.write_bytes(mp4s["clean"])
    r = http.post("/v1/critiques", json={"prompt": PROMPT, "video_uri": path.as_uri()})
    assert r.status_code == 200, r.text
    req = critic_pb2.CritiqueRequest(video=common_pb2.VideoSource(uri=path.as_uri()), prompt=PROMPT)
    assert stub.Critique(req, timeout=60).critique.video.frames == 49


def test_streaming_upload(stub, mp4s) -> None:
    data = mp4s["noise"]

    def messages():
        yield critic_pb2.CritiqueUploadRequest(
            header=critic_pb2.CritiqueUploadHeader(prompt=PROMPT, total_bytes=len(data))
        )
        for i in range(0, len(data), 256 * 1024):
            yield critic_pb2.CritiqueUploadRequest(chunk=data[i : i + 256 * 1024])

    c = stub.CritiqueUpload(messages(), timeout=60).critique
    assert any(i.tag == "noise" for d in c.dimensions for i in d.issues)
    with pytest.raises(grpc.RpcError) as info:
        stub.CritiqueUpload(iter([critic_pb2.CritiqueUploadRequest(chunk=b"abc")]), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_score_batch_items_fail_separately(stub, http, mp4s, bad_videos) -> None:
    items = [
        critic_pb2.ScoreItem(video=common_pb2.VideoSource(data=mp4s["clean"]), prompt=PROMPT),
        critic_pb2.ScoreItem(
            video=common_pb2.VideoSource(data=bad_videos["random_bytes"]), prompt=PROMPT
        ),
        critic_pb2.ScoreItem(video=common_pb2.VideoSource(data=mp4s["judder"]), prompt=PROMPT),
    ]
    results = stub.Score(critic_pb2.ScoreRequest(items=items), timeout=60).results
    assert [r.WhichOneof("outcome") for r in results] == ["critique", "error", "critique"]
    assert results[1].error.code == "INVALID_ARGUMENT"
    clean, judder = results[0].critique, results[2].critique
    assert clean.reward > judder.reward
    assert all(not d.reasons and not d.issues for d in clean.dimensions)
    body = {
        "items": [
            {"prompt": PROMPT, "video_b64": base64.b64encode(v).decode()}
            for v in (mp4s["clean"], b"junk")
        ]
    }
    r = http.post("/v1/scores", json=body)
    assert r.status_code == 200
    out = r.json()["results"]
    assert "critique" in out[0] and out[1]["error"]["code"] == "INVALID_ARGUMENT"
    with pytest.raises(grpc.RpcError) as info:
        stub.Score(critic_pb2.ScoreRequest(), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


BAD_NAMES = [
    "empty",
    "random_bytes",
    "truncated_mp4",
    "truncated_webm",
    "zero_frames",
    "absurd_gif_header",
    "too_tall",
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_video_is_invalid_argument_on_both_fronts(stub, http, mp4s, bad_videos, name) -> None:
    data = bad_videos[name]
    with pytest.raises(grpc.RpcError) as info:
        _critique(stub, data)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert len(info.value.details()) > 20
    r = http.post("/v1/critiques", files={"video": ("v", data)}, data={"prompt": PROMPT})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "INVALID_ARGUMENT"
    _assert_still_serving(stub, http, mp4s)


@pytest.mark.parametrize("prompt", ["", "   ", "x" * 5000])
def test_bad_prompt_is_invalid_argument_on_both_fronts(stub, http, mp4s, prompt) -> None:
    with pytest.raises(grpc.RpcError) as info:
        _critique(stub, mp4s["clean"], prompt=prompt)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    r = http.post("/v1/critiques", files={"video": ("v", mp4s["clean"])}, data={"prompt": prompt})
    assert r.status_code == 400  # never FastAPI's 422
    _assert_still_serving(stub, http, mp4s)


@pytest.mark.parametrize(
    "uri",
    [
        "file:///etc/passwd",
        "http://127.0.0.1:9/x.mp4",
        "ftp://example/x.mp4",
        "file:///nope/../etc/hosts",
    ],
)
def test_uris_outside_policy_are_refused(stub, http, mp4s, uri) -> None:
    req = critic_pb2.CritiqueRequest(video=common_pb2.VideoSource(uri=uri), prompt=PROMPT)
    with pytest.raises(grpc.RpcError) as info:
        stub.Critique(req, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    r = http.post("/v1/critiques", json={"prompt": PROMPT, "video_uri": uri})
    assert r.status_code == 400
    _assert_still_serving(stub, http, mp4s)


@pytest.mark.parametrize(
    "body",
    [b"{not json", b'{"prompt": "x"}', b'{"prompt": "x", "video_b64": "%%%"}', b'{"items": []}'],
)
def test_malformed_http_bodies(http, body) -> None:
    r = http.post("/v1/critiques", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"]["message"]
    r = http.post("/v1/critiques", content=b"raw", headers={"content-type": "video/mp4"})
    assert r.status_code == 415  # unsupported media type: one status per kind of bad input


def test_deadline_is_honoured(stub, mp4s) -> None:
    with pytest.raises(grpc.RpcError) as info:
        _critique(stub, mp4s["clean"], timeout=0.005)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_overload_is_resource_exhausted_and_nothing_accepted_is_lost(mp4s) -> None:
    running, stop = start_critic(workers=1, max_queue=0)
    try:
        channel = grpc.insecure_channel(running.grpc_target)
        stub = critic_pb2_grpc.CriticServiceStub(channel)

        def call() -> str:
            try:
                _critique(stub, mp4s["clean"])
                return "OK"
            except grpc.RpcError as exc:
                return exc.code().name

        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            codes = list(pool.map(lambda _: call(), range(6)))
        assert "OK" in codes and "RESOURCE_EXHAUSTED" in codes
        assert set(codes) <= {"OK", "RESOURCE_EXHAUSTED"}
        with httpx.Client(base_url=running.http_url, timeout=60) as http:
            with concurrent.futures.ThreadPoolExecutor(6) as pool:
                statuses = list(
                    pool.map(
                        lambda _: (
                            http.post(
                                "/v1/critiques",
                                files={"video": ("v", mp4s["clean"])},
                                data={"prompt": PROMPT},
                            ).status_code
                        ),
                        range(6),
                    )
                )
        assert 200 in statuses and 429 in statuses
        channel.close()
    finally:
        stop()


def test_info_health_readiness_metrics_docs(stub, http, critic: RunningCritic) -> None:
    info = stub.GetInfo(critic_pb2.GetInfoRequest(), timeout=10)
    assert info.model.backend == "signal"
    assert info.reward_map.good == pytest.approx(0.9)
    assert http.get("/v1/info").json()["model"]["backend"] == "signal"
    channel = grpc.insecure_channel(critic.grpc_target)
    health = health_pb2_grpc.HealthStub(channel)
    for name in ("", "lift.critic.v1.CriticService"):
        resp = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
        assert resp.status == health_pb2.HealthCheckResponse.SERVING
    channel.close()
    assert http.get("/healthz").status_code == 200
    assert http.get("/readyz").status_code == 200
    assert http.get("/docs").status_code == 200
    assert "/v1/critiques" in http.get("/openapi.json").json()["paths"]
    metrics = http.get("/metrics").text
    assert (
        'lift_requests_total{code="OK",method="Critique",service="critic",transport="grpc"}'
        in metrics
    )
    assert "lift_critic_labels_total" in metrics


BUF = REPO_ROOT / ".tools" / "node_modules" / ".bin" / "buf"


@pytest.mark.skipif(
    not BUF.exists() and not shutil.which("buf"), reason="buf not installed (make setup)"
)
def test_reflection_lets_buf_curl_call_the_service(
    critic: RunningCritic, mp4s, video_root: Path
) -> None:
    buf = str(BUF) if BUF.exists() else "buf"

    def buf_curl(method: str, *data: str) -> dict:
        out = subprocess.run(
            [
                buf,
                "curl",
                "--protocol",
                "grpc",
                "--http2-prior-knowledge",
                *data,
                f"http://{critic.grpc_target}/lift.critic.v1.CriticService/{method}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return json.loads(out.stdout)

    assert buf_curl("GetInfo")["model"]["backend"] == "signal"
    path = video_root / "cut.mp4"
    path.write_bytes(mp4s["cut"])
    body = json.dumps({"video": {"uri": path.as_uri()}, "prompt": PROMPT})
    critique = buf_curl("Critique", "-d", body)
    tags = [i["tag"] for d in critique["critique"]["dimensions"] for i in d.get("issues", [])]
    assert "abrupt_cut" in tags


def test_a_taken_grpc_port_is_refused_not_shared(critic: RunningCritic) -> None:
    # grpcio would share the port (SO_REUSEPORT) and split the traffic between two critics.
    port = critic.runner.grpc_port
    settings = CriticSettings(grpc_port=port, http_port=0, log_level="WARNING")
    with pytest.raises(OSError, match="could not bind gRPC port"):
        start_in_thread(build_critic, settings)
