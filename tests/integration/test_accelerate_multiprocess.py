"""`accelerate launch --num_processes 2` on CPU (gloo): a data-parallel run equals one process.

Both runs train the tiny model offline on the same config (4 scored clips and 2 real
clips a step, so each of the 2 processes takes 2 + 1). The processes draw each step's
timesteps and noise for the whole step and take their rows, and scale their losses so
that the average the gradients get is the one-process loss: what differs is only the
order of float additions (the all-reduce adds two halves; one process sums all rows),
about 1e-7 of a gradient. AdamW turns a gradient into a step of about lr per weight,
so after a few steps the adapters agree to far less than one step's change; the
tolerance below is 1 % of one step (lr = 1e-3). A real difference in what is trained
(another clip, another noise draw, a half-weighted loss) moves weights by about a whole
step and fails it, as the test's second half checks.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load_file

from tools.processes import python_module_command

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

LR = 1e-3
TOLERANCE = 0.01 * LR


def _config(model: Path, data: Path, **extra: Any) -> dict[str, Any]:
    return {
        "name": "data-parallel",
        "mode": "offline",
        "model": str(model),
        "offline_data": {"path": str(data / "data.json")},
        "real_data": {"path": str(data / "real"), "weight": 1.0, "ratio": 0.5},
        "lora": {"rank": 4, "alpha": 4},
        "optimizer": {"lr": LR},
        "steps": 3,
        "batch_size": 4,
        "checkpoint_every": 3,
        "publish_every": 0,
        "seed": 11,
        "device": "cpu",
        **extra,
    }


def _launch(tmp: Path, config: dict[str, Any], processes: int) -> dict[str, Any]:
    tmp.mkdir(parents=True)
    cfg = tmp / "run.json"
    cfg.write_text(json.dumps(config))
    work = tmp / "work"
    cmd = python_module_command(
        ["lift.services.trainer.launch", str(cfg), "--workdir", str(work)], processes
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
           "LIFT_TRAINER_DATA_ROOTS": str(tmp.parents[2])}  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=500, cwd=tmp, env=env)
    assert out.returncode == 0, out.stderr[-4000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    events = [json.loads(line) for line in (work / "events.jsonl").read_text().splitlines()]
    steps = [e["data"] for e in events if e["kind"] == "step"]
    weights = load_file(str(Path(result["adapter_dir"]) / "adapter_model.safetensors"))
    processes = [e["data"]["processes"] for e in events if "processes" in e["data"]]
    return {"result": result, "weights": weights, "steps": steps,
            "processes": processes[0] if processes else None}  # fmt: skip


def _max_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    assert a.keys() == b.keys()
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


def test_two_processes_train_the_adapter_one_process_trains(
    tmp_path: Path, tiny_generator_dir: Path, offline_dataset: Path
) -> None:
    config = _config(tiny_generator_dir, offline_dataset)
    one = _launch(tmp_path / "one", config, 1)
    two = _launch(tmp_path / "two", config, 2)
    # LoRA's B matrices start at zero: how far they are from it is how far training moved.
    moved = max(float(np.abs(v).max()) for k, v in one["weights"].items() if "lora_B" in k)
    diff = _max_diff(one["weights"], two["weights"])
    print(f"adapter: moved up to {moved:.3g} over 3 steps; 1 vs 2 processes differ by {diff:.3g}")
    assert moved > 100 * TOLERANCE  # the run trained: the tolerance is not vacuous
    assert diff <= TOLERANCE, diff
    # The step metrics are the global batch's, on both.
    assert len(one["steps"]) == len(two["steps"]) == 3
    assert two["processes"] == 2 and one["processes"] is None
    for a, b in zip(one["steps"], two["steps"], strict=True):
        assert a["clips"] == b["clips"] == 4 and a["real_clips"] == b["real_clips"] == 2
        assert a["reward"] == pytest.approx(b["reward"], abs=1e-12)
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
    # Another draw (another seed) is a real difference, and the tolerance sees it.
    other = _launch(tmp_path / "other", {**config, "seed": 12}, 1)
    assert _max_diff(one["weights"], other["weights"]) > 100 * TOLERANCE


def test_an_online_run_over_two_processes_samples_the_published_adapter(
    tmp_path: Path, tiny_generator_dir: Path, offline_dataset: Path
) -> None:
    """Online: each process generates and scores its share, from the version the main one
    published (a process that sampled the base model instead would score other videos),
    and the main process's held-out evaluation does not wait on the others."""
    from lift.runner import start_in_thread
    from lift.services.critic.server import build_critic
    from lift.services.critic.settings import CriticSettings
    from lift.services.generator.server import build_generator
    from lift.services.generator.settings import GeneratorSettings

    gen, stop_gen = start_in_thread(
        build_generator,
        GeneratorSettings(grpc_port=0, http_port=0, model=tiny_generator_dir, log_level="WARNING"),
    )
    critic, stop_critic = start_in_thread(
        build_critic, CriticSettings(grpc_port=0, http_port=0, log_level="WARNING")
    )
    config = {
        **_config(tiny_generator_dir, offline_dataset),
        "mode": "online",
        "offline_data": None,
        "generator": {"address": f"127.0.0.1:{gen.grpc_port}"},
        "critic": {"address": f"127.0.0.1:{critic.grpc_port}"},
        "prompts": ["a dog runs", "a ball rolls", "a red car turns"],
        "sampling": {"num_frames": 9, "height": 32, "width": 32, "num_inference_steps": 3},
        "batch_size": 2,
        "videos_per_prompt": 2,
        "publish_every": 1,
        "eval": {"prompts": ["a cat"], "seeds": [0, 1]},
    }
    try:
        one = _launch(tmp_path / "one", config, 1)
        two = _launch(tmp_path / "two", config, 2)
    finally:
        stop_gen()
        stop_critic()
    assert two["processes"] == 2
    assert _max_diff(one["weights"], two["weights"]) <= TOLERANCE
    # Step 1 samples the base model; later steps the adapters of 1e-7-close weights.
    rewards = [(a["reward"], b["reward"]) for a, b in zip(one["steps"], two["steps"], strict=True)]
    assert rewards[0][0] == pytest.approx(rewards[0][1], abs=1e-12)
    assert all(a == pytest.approx(b, abs=1e-3) for a, b in rewards), rewards
    for key in ("reward_before", "reward_after"):
        assert one["result"][key] == pytest.approx(two["result"][key], abs=1e-3), key
