"""The generator over gRPC and HTTP: videos, progress, limits, cancellation, adapter hot swap."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import av
import grpc
import httpx
import numpy as np
import pytest
from prometheus_client import REGISTRY

from lift.client import AdapterNotFound, GeneratorClient, GeneratorError
from lift.generation import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    GenerationRequest,
    Stage,
    request_to_proto,
)
from lift.generator.v1 import generator_pb2, generator_pb2_grpc
from lift.runner import ServiceRunner, start_in_thread
from lift.services.generator.server import build_generator
from lift.services.generator.settings import GeneratorSettings

SMALL = {"num_frames": 5, "height": 32, "width": 48, "num_inference_steps": 2}


def frames_of(data: bytes) -> np.ndarray:
    with av.open(io.BytesIO(data)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


class Running:
    def __init__(self, runner: ServiceRunner) -> None:
        self.grpc = f"127.0.0.1:{runner.grpc_port}"
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{runner.http_port}", timeout=120)
        self.channel = grpc.insecure_channel(self.grpc)
        self.stub = generator_pb2_grpc.GeneratorServiceStub(self.channel)

    def close(self) -> None:
        self.http.close()
        self.channel.close()


def start(tiny_generator_dir, **overrides) -> tuple[Running, callable]:
    settings = GeneratorSettings(
        model=tiny_generator_dir, grpc_port=0, http_port=0, log_level="WARNING", **overrides
    )
    runner, stop = start_in_thread(build_generator, settings)
    running = Running(runner)

    def close() -> None:
        running.close()
        stop()

    return running, close


@pytest.fixture(scope="module")
def gen(tiny_generator_dir) -> Iterator[Running]:
    running, close = start(tiny_generator_dir)
    yield running
    close()


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def wait_for(predicate, timeout_s: float = 10.0) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False


# -- HTTP ---------------------------------------------------------------------------


def test_http_returns_an_mp4_with_the_requested_shape_and_same_seed_same_frames(gen) -> None:
    body = {
        "prompt": "a dog runs on the beach",
        "seed": 7,
        "num_frames": 13,
        "height": 48,
        "width": 80,
        "num_inference_steps": 3,
    }
    r = gen.http.post("/v1/generations", json=body)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "video/mp4"
    assert r.headers["x-lift-seed"] == "7" and r.headers["x-lift-adapter-version"] == "base"
    meta = json.loads(r.headers["x-lift-metadata"])
    assert (meta["num_frames"], meta["height"], meta["width"]) == (13, 48, 80)
    first = frames_of(r.content)
    assert first.shape == (13, 48, 80, 3)
    again = gen.http.post("/v1/generations", json=body)
    assert np.array_equal(frames_of(again.content), first)


def test_http_defaults_come_from_the_model(gen) -> None:
    r = gen.http.post("/v1/generations", json={"prompt": "a cat", "num_inference_steps": 2})
    assert r.status_code == 200
    info = gen.http.get("/v1/info").json()
    d = info["defaults"]
    assert frames_of(r.content).shape == (d["num_frames"], d["height"], d["width"], 3)
    assert info["demo"] is True and info["model_name"] == "lift-tiny-cogvideox"


def test_http_json_answer_carries_base64_and_metadata(gen) -> None:
    r = gen.http.post(
        "/v1/generations",
        json={"prompt": "a cat", "seed": 3, **SMALL},
        headers={"accept": "application/json"},
    )
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["mime_type"] == "video/mp4" and body["metadata"]["seed"] == 3
    assert set(body["metadata"]["timings"]) == {
        "queue_ms",
        "denoise_ms",
        "decode_ms",
        "encode_ms",
        "total_ms",
    }
    assert frames_of(base64.b64decode(body["video_b64"])).shape == (5, 32, 48, 3)


@pytest.mark.parametrize(
    ("body", "status", "code", "needle"),
    [
        ({"prompt": ""}, 400, "INVALID_ARGUMENT", "prompt is empty"),
        ({"prompt": "a", "num_frames": 0}, 400, "INVALID_ARGUMENT", "num_frames"),
        ({"prompt": "a", "height": 31}, 400, "INVALID_ARGUMENT", "even"),
        ({"prompt": "a", "width": 100000}, 400, "INVALID_ARGUMENT", "width"),
        (
            {"prompt": "a", "num_inference_steps": -1},
            400,
            "INVALID_ARGUMENT",
            "num_inference_steps",
        ),
        ({"prompt": "a", "guidance_scale": 99}, 400, "INVALID_ARGUMENT", "guidance_scale"),
        ({"prompt": "a", "seed": -5}, 400, "INVALID_ARGUMENT", "seed"),
        ({"prompt": "a", "steps": 3}, 400, "INVALID_ARGUMENT", "steps"),
        ({"prompt": "a", "num_frames": "many"}, 400, "INVALID_ARGUMENT", "num_frames"),
        ({"negative_prompt": "x"}, 400, "INVALID_ARGUMENT", "prompt"),
        ({"prompt": "a", "adapter_version": "nope", **SMALL}, 404, "NOT_FOUND", "not loaded"),
    ],
)
def test_http_bad_requests(gen, body, status: int, code: str, needle: str) -> None:
    r = gen.http.post("/v1/generations", json=body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and needle in err["message"]


def test_http_malformed_json_is_a_400(gen) -> None:
    r = gen.http.post(
        "/v1/generations", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "INVALID_ARGUMENT"


def test_health_metrics_docs(gen) -> None:
    assert gen.http.get("/healthz").status_code == 200
    assert gen.http.get("/readyz").status_code == 200
    assert gen.http.get("/docs").status_code == 200
    text = gen.http.get("/metrics").text
    for name in (
        "lift_generator_step_seconds",
        "lift_generator_videos_total",
        "lift_generator_model_info",
        "lift_requests_total",
    ):
        assert name in text


# -- gRPC ---------------------------------------------------------------------------


def test_grpc_streams_progress_in_order_then_the_video(gen) -> None:
    req = request_to_proto(
        GenerationRequest("a bird flies", seed=2, **{**SMALL, "num_inference_steps": 4})
    )
    messages = list(gen.stub.Generate(req, timeout=60))
    kinds = [m.WhichOneof("event") for m in messages]
    assert kinds == ["progress"] * 7 + ["video"]
    steps = [(m.progress.stage, m.progress.step) for m in messages[:-1]]
    assert steps == [
        (generator_pb2.GENERATE_STAGE_STARTED, 0),
        *[(generator_pb2.GENERATE_STAGE_DENOISING, i) for i in range(1, 5)],
        (generator_pb2.GENERATE_STAGE_DECODING, 4),
        (generator_pb2.GENERATE_STAGE_ENCODING, 4),
    ]
    video = messages[-1].video
    assert video.mime_type == "video/mp4" and video.metadata.seed == 2
    assert frames_of(video.data).shape == (5, 32, 48, 3)


def test_grpc_and_http_make_the_same_frames(gen) -> None:
    with GeneratorClient(gen.grpc) as client:
        v = client.generate(GenerationRequest("a red car", seed=9, **SMALL))
    r = gen.http.post("/v1/generations", json={"prompt": "a red car", "seed": 9, **SMALL})
    assert np.array_equal(frames_of(v.data), frames_of(r.content))


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"prompt": ""}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"prompt": "a", "height": 17}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"prompt": "a", "guidance_scale": -1.0}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"prompt": "a", "adapter_version": "v-none"}, grpc.StatusCode.NOT_FOUND),
    ],
)
def test_grpc_bad_requests(gen, fields, code) -> None:
    with GeneratorClient(gen.grpc) as client, pytest.raises(GeneratorError) as err:
        client.generate(GenerationRequest(**{**SMALL, **fields}))
    assert err.value.code == code.name and err.value.message
    assert err.value.status == code
    # A lost adapter is told apart by its status code (NOT_FOUND), not by its wording.
    assert isinstance(err.value, AdapterNotFound) == (code == grpc.StatusCode.NOT_FOUND)


def test_grpc_info(gen) -> None:
    with GeneratorClient(gen.grpc) as client:
        info = client.info()
    assert info["pipeline"] == "CogVideoXPipeline" and info["demo"] is True
    assert info["defaults"]["num_frames"] == 49 and info["limits"]["frames_multiple"] == 4
    assert info == gen.http.get("/v1/info").json()  # the same dict over both transports


# -- cancellation, deadlines, overload ------------------------------------------------

LONG = {"num_frames": 49, "height": 64, "width": 96, "num_inference_steps": 200}


def test_cancelling_the_stream_stops_denoising(gen) -> None:
    cancelled = counter("lift_generator_videos_total", outcome="cancelled")
    steps_before = counter("lift_generator_step_seconds_count")
    call = gen.stub.Generate(request_to_proto(GenerationRequest("a long one", seed=1, **LONG)))
    for msg in call:
        if msg.progress.step >= 3:
            call.cancel()
            break
    assert wait_for(lambda: counter("lift_generator_videos_total", outcome="cancelled") > cancelled)
    ran = counter("lift_generator_step_seconds_count") - steps_before
    assert 3 <= ran < 50  # stopped long before 200 steps


def test_a_passed_deadline_stops_denoising(gen) -> None:
    cancelled = counter("lift_generator_videos_total", outcome="cancelled")
    with pytest.raises(grpc.RpcError) as err:
        list(gen.stub.Generate(request_to_proto(GenerationRequest("late", **LONG)), timeout=0.5))
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert wait_for(lambda: counter("lift_generator_videos_total", outcome="cancelled") > cancelled)


def test_an_http_client_that_leaves_stops_denoising(gen) -> None:
    cancelled = counter("lift_generator_videos_total", outcome="cancelled")
    with pytest.raises(httpx.ReadTimeout):
        gen.http.post("/v1/generations", json={"prompt": "gone", **LONG}, timeout=0.7)
    assert wait_for(lambda: counter("lift_generator_videos_total", outcome="cancelled") > cancelled)


def test_a_full_queue_answers_at_once(tiny_generator_dir) -> None:
    running, close = start(tiny_generator_dir, workers=1, max_queue=0)
    try:
        call = running.stub.Generate(request_to_proto(GenerationRequest("busy", **LONG)))
        next(iter(call))  # the long generation holds the only worker
        t0 = time.monotonic()
        r = running.http.post("/v1/generations", json={"prompt": "another", **SMALL})
        assert r.status_code == 429 and r.json()["error"]["code"] == "RESOURCE_EXHAUSTED"
        with pytest.raises(grpc.RpcError) as err:
            list(running.stub.Generate(request_to_proto(GenerationRequest("and another", **SMALL))))
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert time.monotonic() - t0 < 5
        # bad input is still a 400, not a 429, when the queue is full
        assert running.http.post("/v1/generations", json={"prompt": ""}).status_code == 400
        call.cancel()
    finally:
        close()


# -- adapters -------------------------------------------------------------------------


def _multipart(lora_dir, version: str) -> dict:
    return {
        "data": {"version": version},
        "files": {
            "weights": ("adapter_model.safetensors", (lora_dir / WEIGHTS_FILE).read_bytes()),
            "config": ("adapter_config.json", (lora_dir / CONFIG_FILE).read_bytes()),
        },
    }


def test_hot_swap_under_concurrent_requests_never_mixes_versions(
    tiny_generator_dir, generator_loras
) -> None:
    running, close = start(tiny_generator_dir, workers=2, max_queue=32)
    try:
        results: dict[int, tuple[str, np.ndarray]] = {}

        def one(seed: int) -> None:
            with GeneratorClient(running.grpc) as client:
                v = client.generate(GenerationRequest("a dog", seed=seed, **SMALL))
            results[seed] = (v.metadata.adapter_version, frames_of(v.data))

        # Three waves of requests; each swap happens while the wave before it may still be
        # queued or running. The last wave starts after the last promotion, so it is v2.
        with ThreadPoolExecutor(6) as pool:
            futures = [pool.submit(one, s) for s in range(0, 6)]
            time.sleep(0.3)
            r = running.http.post("/v1/adapters", **_multipart(generator_loras[0], "v1"))
            assert r.status_code == 200, r.text
            # loading is not serving: requests naming no version change only on promotion
            r = running.http.post("/v1/adapters/v1:promote")
            assert r.status_code == 200 and r.json()["previous_version"] == "base", r.text
            futures += [pool.submit(one, s) for s in range(6, 12)]
            time.sleep(0.3)
            body = {
                "version": "v2",
                "weights_b64": base64.b64encode(
                    (generator_loras[1] / WEIGHTS_FILE).read_bytes()
                ).decode(),
                "config": json.loads((generator_loras[1] / CONFIG_FILE).read_text()),
            }
            r = running.http.post("/v1/adapters", json=body)
            assert r.status_code == 200, r.text
            assert r.json()["previous_version"] == "v1"  # the default, unchanged by the load
            with GeneratorClient(running.grpc) as client:
                assert client.promote("v2") == {"version": "v2", "previous_version": "v1"}
            futures += [pool.submit(one, s) for s in range(12, 16)]
            for f in futures:
                f.result()
        seen = {version for version, _ in results.values()}
        assert seen <= {"base", "v1", "v2"} and len(seen) >= 2
        assert {results[s][0] for s in range(12, 16)} == {"v2"}
        # Every video equals the one its version makes alone: no video saw a mix.
        with GeneratorClient(running.grpc) as client:
            for seed, (version, frames) in results.items():
                pinned = client.generate(
                    GenerationRequest("a dog", seed=seed, adapter_version=version, **SMALL)
                )
                assert pinned.metadata.adapter_version == version
                assert np.array_equal(frames_of(pinned.data), frames), (seed, version)
    finally:
        close()


def test_in_flight_generation_finishes_on_the_version_it_started_with(
    tiny_generator_dir, generator_loras
) -> None:
    running, close = start(tiny_generator_dir)
    try:
        req = GenerationRequest("a dog", seed=5, **{**SMALL, "num_inference_steps": 40})
        started: list[str] = []
        loaded = threading.Event()

        def on_progress(p) -> None:
            if p.stage == Stage.STARTED:
                started.append(p.adapter_version)
            if p.step == 2 and not loaded.is_set():
                threading.Thread(target=load, daemon=True).start()

        def load() -> None:
            with GeneratorClient(running.grpc) as c:
                c.load_adapter("v1", generator_loras[0])
            loaded.set()

        with GeneratorClient(running.grpc) as client:
            video = client.generate(req, on_progress=on_progress)
            assert loaded.wait(30)
            assert started == ["base"] and video.metadata.adapter_version == "base"
            base = client.generate(
                GenerationRequest(
                    "a dog", seed=5, adapter_version="base", **{**SMALL, "num_inference_steps": 40}
                )
            )
            assert np.array_equal(frames_of(video.data), frames_of(base.data))
            info = client.info()
            assert info["current_adapter_version"] == "base"  # loads never change the default
            client.promote("v1")
            info = client.info()
            assert info["current_adapter_version"] == "v1"
            # Loaded adapters (load times are Timestamps on the wire) read as over HTTP.
            assert info == running.http.get("/v1/info").json()
    finally:
        close()


def test_a_bad_adapter_is_refused_and_the_old_one_keeps_serving(
    tiny_generator_dir, generator_loras
) -> None:
    running, close = start(tiny_generator_dir)
    try:
        assert (
            running.http.post("/v1/adapters", **_multipart(generator_loras[0], "good")).status_code
            == 200
        )
        assert running.http.post("/v1/adapters/good:promote").status_code == 200
        before = running.http.post("/v1/generations", json={"prompt": "x", "seed": 1, **SMALL})
        bad = {"version": "bad", "weights_b64": base64.b64encode(b"garbage").decode()}
        r = running.http.post("/v1/adapters", json=bad)
        assert r.status_code == 400 and "safetensors" in r.json()["error"]["message"]
        with GeneratorClient(running.grpc) as client, pytest.raises(GeneratorError) as err:
            client.load_adapter("bad2", b"\x00" * 64)
        assert err.value.code == "INVALID_ARGUMENT"
        assert running.http.get("/v1/info").json()["current_adapter_version"] == "good"
        after = running.http.post("/v1/generations", json={"prompt": "x", "seed": 1, **SMALL})
        assert after.headers["x-lift-adapter-version"] == "good"
        assert np.array_equal(frames_of(after.content), frames_of(before.content))
        for body in ({"version": "v"}, {"version": "v", "uri": "file:///x", "weights_b64": ""}):
            r = running.http.post("/v1/adapters", json=body)
            assert r.status_code == 400 and "exactly one" in r.json()["error"]["message"]
        r = running.http.post("/v1/adapters", content=b"x", headers={"content-type": "text/plain"})
        assert r.status_code == 415  # unsupported media type: one status per kind of bad input
    finally:
        close()
