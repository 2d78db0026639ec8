"""An online run against real in-process generator and critic services, and `lift align`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lift.client import GeneratorClient
from lift.runner import start_in_thread
from lift.services.critic.server import build_critic
from lift.services.critic.settings import CriticSettings
from lift.services.generator.server import build_generator
from lift.services.generator.settings import GeneratorSettings
from lift.services.trainer.manager import RunManager
from lift.services.trainer.settings import TrainerSettings

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def services(tiny_generator_dir: Path):
    critic, stop_critic = start_in_thread(build_critic, CriticSettings(grpc_port=0, http_port=0))
    gen, stop_gen = start_in_thread(
        build_generator, GeneratorSettings(grpc_port=0, http_port=0, model=tiny_generator_dir)
    )
    yield f"127.0.0.1:{gen.grpc_port}", f"127.0.0.1:{critic.grpc_port}"
    stop_gen()
    stop_critic()


def test_online_run_publishes_and_evaluates(
    services, tmp_path: Path, tiny_generator_dir: Path, offline_dataset: Path
) -> None:
    gen, critic = services
    cfg = {
        "model": str(tiny_generator_dir),
        "generator": {"address": gen},
        "critic": {"address": critic},
        "prompts": ["a dog runs", "a ball rolls"],
        "real_data": {"path": str(offline_dataset / "real")},
        "sampling": {"num_frames": 9, "height": 32, "width": 32, "num_inference_steps": 4},
        "optimizer": {"lr": 1e-3},
        "steps": 3,
        "batch_size": 2,
        "publish_every": 1,
        "checkpoint_every": 3,
        "eval": {"prompts": ["a cat"], "seeds": [0, 1, 2]},
    }
    manager = RunManager(
        TrainerSettings(
            data_dir=tmp_path / "data",
            data_roots=[tmp_path.parent],  # pytest's base temp: the tiny model, the dataset
            allowed_endpoints=[gen, critic],
        )
    )
    manager.load()
    try:
        run = manager.start_run(json.dumps(cfg))
        while not manager.get_run(run.id).state.final:
            time.sleep(0.2)
        final = manager.get_run(run.id)
        events = manager.events(run.id)
    finally:
        manager.close()
    assert final.state.value == "succeeded", final.reason
    kinds = [e.kind for e in events]
    assert kinds.count("publish") == 3 and kinds.count("eval") == 2
    steps = [e.data for e in events if e.kind == "step"]
    assert all(0 <= s["reward"] <= 1 and s["dynamic_degree"] is not None for s in steps)
    assert set(steps[0]["reward_by_dimension"]) == {"motion_smoothness", "video_fidelity"}
    result = final.result or {}
    for key in ("reward_before", "reward_after", "ci95", "gain", "guards"):
        assert result[key] is not None, key
    assert result["n"] == 3
    with GeneratorClient(gen) as client:
        loaded = [a["version"] for a in client.info()["adapters"]]
    assert final.adapter_version in loaded and final.adapter_version.startswith(run.id)


def test_lift_align_demo_json(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "lift.cli.main", "align", "--demo", "--steps", "2", "--json",
         "--plot", str(tmp_path / "plot.png")],
        capture_output=True, text=True, timeout=500, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout)  # stdout is the JSON object alone (progress on stderr)
    for key in ("reward_before", "reward_after", "ci95", "guards"):
        assert key in summary and summary[key] is not None, key
    assert {"dynamic_degree", "real_loss", "warnings"} <= set(summary["guards"])
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
