"""Remote CLI commands import no torch, and `lift runs` drives a trainer server.

Each command runs in a fresh interpreter (as a user would run `lift`) against services in this
process; a small wrapper records which heavy modules the command imported before it exited.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from lift.client import TrainerClient
from lift.runner import start_in_thread
from lift.services.critic.server import build_critic
from lift.services.critic.settings import CriticSettings
from lift.services.generator.server import build_generator
from lift.services.generator.settings import GeneratorSettings
from lift.services.trainer.server import build_trainer
from lift.services.trainer.settings import TrainerSettings

HEAVY = ("torch", "transformers", "diffusers", "peft", "accelerate", "onnxruntime", "cv2", "av")
"""Modules a remote command must not import (the base install does not even have them)."""

_WRAPPER = """
import atexit, json, os, sys

def _report():
    with open(os.environ["LIFT_TEST_IMPORTED"], "w") as f:
        json.dump(sorted(m for m in json.loads(os.environ["LIFT_TEST_HEAVY"]) if m in sys.modules), f)

atexit.register(_report)
from lift.cli.main import app
app(prog_name="lift")
"""


def lift(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run `lift ARGS` in a fresh interpreter; (the process, the heavy modules it imported)."""
    report = tmp_path / f"imported-{len(list(tmp_path.glob('imported-*')))}.json"
    env = {**os.environ, "LIFT_TEST_IMPORTED": str(report), "LIFT_TEST_HEAVY": json.dumps(HEAVY)}
    proc = subprocess.run(
        [sys.executable, "-c", _WRAPPER, *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=env,
    )
    return proc, json.loads(report.read_text())


@pytest.fixture(scope="module")
def critic() -> Iterator[str]:
    runner, stop = start_in_thread(
        build_critic, CriticSettings(grpc_port=0, http_port=0, log_level="WARNING")
    )
    yield f"127.0.0.1:{runner.grpc_port}"
    stop()


@pytest.fixture(scope="module")
def trainer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("trainer-data")
    runner, stop = start_in_thread(
        build_trainer,
        TrainerSettings(
            grpc_port=0,
            http_port=0,
            data_dir=data,
            log_level="WARNING",
            # the session's temp files: the tiny model and the offline dataset
            data_roots=[tmp_path_factory.getbasetemp()],
        ),
    )
    yield f"127.0.0.1:{runner.grpc_port}"
    stop()


def test_remote_critique_imports_no_torch(critic: str, mp4s: dict[str, bytes], tmp_path) -> None:
    clip = tmp_path / "clean.mp4"
    clip.write_bytes(mp4s["clean"])
    proc, heavy = lift(tmp_path, "critique", str(clip), "--prompt", "shapes", "--server", critic,
                       "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert heavy == []
    out = json.loads(proc.stdout)
    assert out["file"] == str(clip) and len(out["dimensions"]) == 3


def test_remote_prefs_eval_imports_no_torch(critic: str, mp4s: dict[str, bytes], tmp_path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("clean", "frozen"):
        (videos / f"{name}.mp4").write_bytes(mp4s[name])
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(
        "path_A,path_B,prompt,VQ,MQ,TA\nvideos/clean.mp4,videos/frozen.mp4,shapes,A,A,same\n"
    )
    proc, heavy = lift(tmp_path, "prefs", "eval", str(pairs), "--server", critic, "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert heavy == []
    out = json.loads(proc.stdout)
    assert out["columns"]["MQ"]["compared"] == 1 and out["errors"] == []


def test_remote_generate_imports_no_torch(tiny_generator_dir: Path, tmp_path: Path) -> None:
    runner, stop = start_in_thread(
        build_generator,
        GeneratorSettings(model=tiny_generator_dir, grpc_port=0, http_port=0, log_level="WARNING"),
    )
    try:
        out = tmp_path / "v.mp4"
        proc, heavy = lift(
            tmp_path, "generate", "--prompt", "a dog", "--out", str(out),
            "--server", f"127.0.0.1:{runner.grpc_port}",
            "--num-frames", "5", "--height", "32", "--width", "48", "--steps", "2", "--seed", "1",
        )  # fmt: skip
    finally:
        stop()
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert heavy == []
    assert out.read_bytes()[4:8] == b"ftyp"  # an mp4
    assert proc.stdout.startswith(f"{out}: 5 frames 48x32")  # the bar went to stderr


def _offline_config(model: Path, data: Path, steps: int) -> dict[str, Any]:
    return {
        "name": "cli-remote",
        "mode": "offline",
        "model": str(model),
        "offline_data": {"path": str(data / "data.json")},
        "lora": {"rank": 4, "alpha": 4},
        "optimizer": {"lr": 1e-3},
        "steps": steps,
        "batch_size": 2,
        "checkpoint_every": 100,
        "publish_every": 0,
        "seed": 3,
    }


def test_align_and_runs_against_a_trainer_server_import_no_torch(
    trainer: str, tiny_generator_dir: Path, offline_dataset: Path, tmp_path: Path
) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump(_offline_config(tiny_generator_dir, offline_dataset, 2)))
    proc, heavy = lift(tmp_path, "align", "--config", str(cfg), "--server", trainer, "--json",
                       "--plot", str(tmp_path / "plot.png"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert heavy == []
    summary = json.loads(proc.stdout)  # pure JSON: the progress bars went to stderr
    assert summary["state"] == "succeeded" and summary["steps"] == 2
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"
    run_id = summary["run_id"]

    proc, heavy = lift(tmp_path, "runs", "list", "--server", trainer, "--json")
    assert proc.returncode == 0 and heavy == [], proc.stderr[-2000:]
    assert run_id in [r["id"] for r in json.loads(proc.stdout)]

    proc, heavy = lift(tmp_path, "runs", "list", "--server", trainer)
    assert proc.returncode == 0 and heavy == [] and run_id in proc.stdout

    proc, heavy = lift(tmp_path, "runs", "show", run_id, "--server", trainer, "--json")
    assert proc.returncode == 0 and heavy == [], proc.stderr[-2000:]
    shown = json.loads(proc.stdout)
    assert shown["state"] == "succeeded" and shown["config"]["name"] == "cli-remote"

    proc, heavy = lift(tmp_path, "runs", "watch", run_id, "--server", trainer, "--json")
    assert proc.returncode == 0 and heavy == [], proc.stderr[-2000:]
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["kind"] == "state" and events[-1]["data"]["state"] == "succeeded"
    assert sum(e["kind"] == "step" for e in events) == 2

    proc, _ = lift(tmp_path, "runs", "cancel", run_id, "--server", trainer)
    assert proc.returncode == 1 and "FAILED_PRECONDITION" in proc.stderr  # finished runs stay

    proc, _ = lift(tmp_path, "runs", "show", "no-such-run", "--server", trainer)
    assert proc.returncode == 1 and "NOT_FOUND" in proc.stderr and "Traceback" not in proc.stderr


def test_runs_cancel_and_watch_a_running_run(
    trainer: str, tiny_generator_dir: Path, offline_dataset: Path, tmp_path: Path
) -> None:
    with TrainerClient(trainer) as client:
        run = client.start_run(_offline_config(tiny_generator_dir, offline_dataset, 10_000))
    proc, heavy = lift(tmp_path, "runs", "cancel", run.id, "--server", trainer, "--json")
    assert proc.returncode == 0 and heavy == [], proc.stderr[-2000:]
    assert json.loads(proc.stdout)["id"] == run.id
    proc, heavy = lift(tmp_path, "runs", "watch", run.id, "--server", trainer)
    assert proc.returncode == 1 and heavy == []  # watched to its end, which is not success
    assert "cancelled" in proc.stdout


def test_remote_hra_eval_imports_no_torch(critic: str, mp4s: dict[str, bytes], tmp_path) -> None:
    from lift.critique import Dimension
    from tests.unit.test_hra import _record

    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "clean.mp4").write_bytes(mp4s["clean"])
    hra = tmp_path / "hra.jsonl"
    hra.write_text("".join(json.dumps(_record("clean", d, "Good")) + "\n" for d in Dimension))
    proc, heavy = lift(tmp_path, "hra", "eval", str(hra), "--server", critic, "--no-signal",
                       "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert heavy == []
    (report,) = json.loads(proc.stdout)
    assert report["critic"] == critic
