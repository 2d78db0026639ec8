"""The trainer service: runs over gRPC and HTTP, events, resume, outages, cancel, bad configs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from safetensors.torch import load_file

from lift.client import TrainerClient, TrainerError
from lift.runner import start_in_thread
from lift.runs import Run
from lift.services.trainer.manager import RunManager
from lift.services.trainer.server import build_trainer
from lift.services.trainer.settings import TrainerSettings
from lift.services.trainer.store import RunRecord
from tools.processes import StartError, free_port, wait_ready

pytestmark = pytest.mark.timeout(600)


def trainer_settings(data_dir: Path, **kw: Any) -> TrainerSettings:
    """A trainer whose data_dir is ``tmp_path / X``: it may read the session's temporary
    files (the tiny model, the datasets: pytest's base temp directory, two levels up) and
    call any endpoint (the tests start generators and critics on ephemeral ports)."""
    return TrainerSettings(
        data_dir=data_dir, data_roots=[data_dir.parents[1]], allowed_endpoints=["*"], **kw
    )


def offline_config(model: Path, data: Path, steps: int = 6, **extra: Any) -> dict[str, Any]:
    return {
        "name": "offline-test",
        "mode": "offline",
        "model": str(model),
        "offline_data": {"path": str(data / "data.json")},
        "real_data": {"path": str(data / "real"), "weight": 1.0, "ratio": 0.5},
        "lora": {"rank": 4, "alpha": 4},
        "optimizer": {"lr": 1e-3},
        "steps": steps,
        "batch_size": 2,
        "checkpoint_every": 2,
        "publish_every": 0,
        "seed": 7,
        **extra,
    }


@pytest.fixture()
def trainer(tmp_path: Path):
    runner, stop = start_in_thread(
        build_trainer, trainer_settings(tmp_path / "data", grpc_port=0, http_port=0)
    )
    yield runner
    stop()


def _wait_final(client: TrainerClient, run_id: str, timeout_s: float = 300) -> Run:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = client.get_run(run_id)
        if run.state.final:
            return run
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not finish")


def _run_to_end(data_dir: Path, config: str) -> RunRecord:
    """Train ``config`` to the end with a fresh in-process manager."""
    manager = RunManager(trainer_settings(data_dir))
    manager.load()
    try:
        run = manager.start_run(config)
        while not manager.get_run(run.id).state.final:
            time.sleep(0.1)
        return manager.get_run(run.id)
    finally:
        manager.close()


def _assert_same_json(a: Any, b: Any, where: str = "") -> None:
    """Equal JSON, floats to the nanosecond (durations and times travel as Duration/Timestamp)."""
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_same_json(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same_json(x, y, f"{where}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-12, abs=1e-9), where
    else:
        assert a == b and type(a) is type(b), where


def _assert_same_run(typed: Run, http_json: dict[str, Any]) -> None:
    """A run from TrainerClient (gRPC) has the keys and values of GET /v1/runs/{id}."""
    grpc_json = typed.to_json()
    assert grpc_json.keys() == http_json.keys()
    for key in ("created_unix_s", "started_unix_s", "finished_unix_s"):  # nanosecond Timestamps
        assert grpc_json.pop(key) == pytest.approx(http_json.pop(key), abs=1e-6)
    # The typed result carries every field (unset ones null); HTTP's holds those the run set.
    result, http_result = grpc_json.pop("result"), http_json.pop("result")
    assert {k: v for k, v in result.items() if k in http_result} == http_result
    assert grpc_json == http_json  # the config with every default, nulls included


def _adapter(run: dict[str, Any]) -> dict[str, Any]:
    return load_file(str(Path(run["result"]["adapter_dir"]) / "adapter_model.safetensors"))


def test_offline_run_events_in_order_over_grpc_and_sse(
    trainer, tiny_generator_dir: Path, offline_dataset: Path
) -> None:
    with TrainerClient(f"127.0.0.1:{trainer.grpc_port}") as client:
        run = client.start_run(json.dumps(offline_config(tiny_generator_dir, offline_dataset)))
        assert run.state == "queued" and run.total_steps == 6
        events = list(client.watch(run.id))
        final = client.get_run(run.id)
    assert final.state == "succeeded", final.reason
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    states = [e.data["state"] for e in events if e.kind == "state"]
    assert states == ["queued", "running", "succeeded"]
    assert [e.step for e in events if e.kind == "step"] == [1, 2, 3, 4, 5, 6]
    assert [e.step for e in events if e.kind == "checkpoint"] == [2, 4, 6]
    step = next(e for e in events if e.kind == "step")
    assert {"loss", "reward", "real_loss", "grad_norm"} <= set(step.data)
    assert final.result is not None
    assert Path(final.result["adapter_dir"], "adapter_model.safetensors").is_file()

    # The same history over HTTP server-sent events, resumable with Last-Event-ID.
    url = f"http://127.0.0.1:{trainer.http_port}/v1/runs/{run.id}/events"
    with httpx.stream("GET", url, timeout=30) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = list(r.iter_lines())
    ids = [int(line[4:]) for line in lines if line.startswith("id: ")]
    assert ids == [e.seq for e in events]
    # The typed gRPC events carry what the SSE JSON carries, kind and data included.
    sse = [json.loads(line[6:]) for line in lines if line.startswith("data: ")]
    for typed, http_json in zip(events, sse, strict=True):
        _assert_same_json(typed.to_json(), http_json)
    with httpx.stream("GET", url, headers={"Last-Event-ID": "3"}, timeout=30) as r:
        ids = [int(line[4:]) for line in r.iter_lines() if line.startswith("id: ")]
    assert ids == [e.seq for e in events][3:]
    # A resume point no event can have is a 400 before the stream starts (not a broken 200).
    for params, headers in [
        ({"after": str(2**63)}, {}),
        ({}, {"Last-Event-ID": "99999999999999999999"}),
        ({}, {"Last-Event-ID": "abc"}),
        ({}, {"Last-Event-ID": "\u00b2".encode("latin-1")}),
    ]:
        bad = httpx.get(url, params=params, headers=headers, timeout=30)
        assert bad.status_code == 400, (params, headers, bad.text)
        assert bad.json()["error"]["code"] == "INVALID_ARGUMENT"
    got = httpx.get(f"http://127.0.0.1:{trainer.http_port}/v1/runs/{run.id}").json()
    assert got["state"] == "succeeded" and got["step"] == 6
    _assert_same_run(final, got)
    listed = httpx.get(f"http://127.0.0.1:{trainer.http_port}/v1/runs?state=succeeded").json()
    assert [r["id"] for r in listed["runs"]] == [run.id]


def test_rejection_sampling_run(trainer, tiny_generator_dir: Path, offline_dataset: Path) -> None:
    cfg = offline_config(
        tiny_generator_dir, offline_dataset, steps=3, strategy="rejection_sampling"
    )
    with TrainerClient(f"127.0.0.1:{trainer.grpc_port}") as client:
        run = client.start_run(json.dumps(cfg))
        events = list(client.watch(run.id))
    assert events[-1].data["state"] == "succeeded"
    kept = [e.data["kept"] for e in events if e.kind == "step"]
    assert all(0 <= k <= 1 for k in kept) and any(k < 1 for k in kept)


def test_bad_configs_name_the_field(
    trainer, tiny_generator_dir: Path, offline_dataset: Path
) -> None:
    base = offline_config(tiny_generator_dir, offline_dataset)
    with TrainerClient(f"127.0.0.1:{trainer.grpc_port}") as client:
        for patch, field in [
            ({"optimizer": {"lr": 0}}, "optimizer.lr"),
            ({"offline_data": {"path": "/nonexistent.json"}}, "offline_data.path"),
            ({"model": "/nonexistent"}, "model"),
        ]:
            with pytest.raises(TrainerError) as err:
                client.start_run(json.dumps({**base, **patch}))
            assert err.value.code == "INVALID_ARGUMENT" and field in err.value.message
        with pytest.raises(TrainerError) as err:
            client.get_run("run-nope")
        assert err.value.code == "NOT_FOUND"
    http = f"http://127.0.0.1:{trainer.http_port}"
    r = httpx.post(
        f"{http}/v1/runs", content=b"steps: [", headers={"content-type": "application/yaml"}
    )
    assert r.status_code == 400 and "YAML" in r.json()["error"]["message"]
    r = httpx.post(f"{http}/v1/runs", json={**base, "batch_size": -1})
    assert r.status_code == 400 and "batch_size" in r.json()["error"]["message"]
    for kind, nested in [("application/json", "[" * 100_000), ("application/yaml", "- " * 50_000)]:
        r = httpx.post(f"{http}/v1/runs", content=nested, headers={"content-type": kind})
        assert r.status_code == 400 and "nested" in r.json()["error"]["message"], r.text
    assert httpx.get(f"{http}/v1/runs/run-nope").status_code == 404
    assert httpx.get(f"{http}/v1/runs?state=sleeping").status_code == 400
    assert httpx.get(f"{http}/readyz").status_code == 200


def test_cancel(trainer, tiny_generator_dir: Path, offline_dataset: Path) -> None:
    cfg = offline_config(tiny_generator_dir, offline_dataset, steps=100_000)
    with TrainerClient(f"127.0.0.1:{trainer.grpc_port}") as client:
        run = client.start_run(json.dumps(cfg))
        for e in client.watch(run.id):
            if e.kind == "step":
                break
        client.cancel_run(run.id)
        final = _wait_final(client, run.id)
        assert final.state == "cancelled" and 1 <= final.step < 100_000
        with pytest.raises(TrainerError) as err:
            client.cancel_run(run.id)
        assert err.value.code == "FAILED_PRECONDITION"
    r = httpx.post(f"http://127.0.0.1:{trainer.http_port}/v1/runs/{run.id}:cancel")
    assert r.status_code == 409


def test_dependency_outage_fails_the_run_with_a_reason(trainer, tiny_generator_dir: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    down = {"address": dead, "timeout_s": 2, "retries": 3, "backoff_s": 0.1, "down_after_s": 2}
    cfg = {
        "model": str(tiny_generator_dir),
        "prompts": ["a dog"],
        "generator": down,
        "critic": down,
        "sampling": {"num_frames": 9, "height": 32, "width": 32, "num_inference_steps": 2},
        "steps": 2,
    }
    with TrainerClient(f"127.0.0.1:{trainer.grpc_port}") as client:
        run = client.start_run(json.dumps(cfg))
        final = _wait_final(client, run.id, timeout_s=60)
    assert final.state == "failed"
    assert "generator" in final.reason and dead in final.reason
    assert "UNAVAILABLE" in final.reason


def test_interrupted_run_resumes_to_the_same_adapter(
    tmp_path: Path, tiny_generator_dir: Path, offline_dataset: Path
) -> None:
    cfg = json.dumps(offline_config(tiny_generator_dir, offline_dataset, steps=6))
    a = _run_to_end(tmp_path / "a", cfg).to_json()

    first = RunManager(trainer_settings(tmp_path / "b"))
    first.load()
    run_b = first.start_run(cfg)
    seq = 0
    stopped = False
    while not stopped:  # stop the trainer right after the step-2 checkpoint
        for e in first.wait_events(run_b.id, seq, 1.0):
            seq = e.seq
            if e.kind == "checkpoint" and e.step == 2:
                first.close()
                stopped = True
                break
    second = RunManager(trainer_settings(tmp_path / "b"))
    second.load()
    try:
        while not second.get_run(run_b.id).state.final:
            time.sleep(0.1)
        b = second.get_run(run_b.id)
        kinds = [e.kind for e in second.events(run_b.id)]
    finally:
        second.close()
    assert b.state.value == "succeeded" and b.resumes == 1
    assert "resumed" in kinds
    wa, wb = _adapter(a), _adapter(b.to_json())
    assert wa.keys() == wb.keys()
    for k in wa:
        assert (wa[k] == wb[k]).all(), k


def test_kill_9_then_restart_resumes_from_the_last_checkpoint(
    tmp_path: Path, tiny_generator_dir: Path, offline_dataset: Path
) -> None:
    data = tmp_path / "data"
    grpc_port, http_port = free_port(), free_port()
    cmd = [
        sys.executable, "-m", "lift.cli.main", "trainer", "serve", "--data-dir", str(data),
        "--grpc-port", str(grpc_port), "--http-port", str(http_port),
    ]  # fmt: skip
    env = {
        **os.environ,
        "LIFT_TRAINER_LOG_LEVEL": "WARNING",
        "LIFT_TRAINER_DATA_ROOTS": str(tmp_path.parent),  # the tiny model and the dataset
    }

    def start() -> subprocess.Popen[bytes]:
        p = subprocess.Popen(cmd, env=env)
        try:
            wait_ready(p, f"http://127.0.0.1:{http_port}/readyz", "the trainer", timeout_s=120)
        except StartError:
            p.kill()
            raise
        return p

    proc = start()
    try:
        # Enough steps that the kill lands mid-run even when events reach us late.
        cfg = offline_config(tiny_generator_dir, offline_dataset, steps=24)
        r = httpx.post(f"http://127.0.0.1:{http_port}/v1/runs", json=cfg)
        assert r.status_code == 201, r.text
        run_id = r.json()["id"]
        with TrainerClient(f"127.0.0.1:{grpc_port}") as client:
            for e in client.watch(run_id):
                if e.kind == "step" and e.step == 3:  # past the step-2 checkpoint
                    break
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        ckpts = sorted(p.name for p in (data / "runs" / run_id / "checkpoints").iterdir())
        # At least the step-2 checkpoint was written; retention keeps the newest few.
        assert ckpts and "step-00000024" not in ckpts, ckpts
        proc = start()
        with TrainerClient(f"127.0.0.1:{grpc_port}") as client:
            final = _wait_final(client, run_id)
            events = list(client.watch(run_id))
        assert final.state == "succeeded" and final.resumes == 1
        resumed = [e for e in events if e.kind == "resumed"]
        assert resumed and resumed[0].step >= 2
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()

    # The same run without the crash ends with the same adapter.
    wa = _adapter(_run_to_end(tmp_path / "straight", json.dumps(cfg)).to_json())
    wb = _adapter(final.to_json())
    for k in wa:
        assert (wa[k] == wb[k]).all(), k


def test_grpc_status_codes(trainer) -> None:
    channel = grpc.insecure_channel(f"127.0.0.1:{trainer.grpc_port}")
    from lift.trainer.v1 import trainer_pb2, trainer_pb2_grpc

    stub = trainer_pb2_grpc.TrainerServiceStub(channel)
    with pytest.raises(grpc.RpcError) as err:
        list(stub.WatchRun(trainer_pb2.WatchRunRequest(id="run-nope"), timeout=10))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as err:
        stub.StartRun(trainer_pb2.StartRunRequest(), timeout=10)  # online, but no prompts
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    channel.close()
