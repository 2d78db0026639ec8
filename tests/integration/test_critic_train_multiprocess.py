"""`lift critic train` under `accelerate launch --num_processes 2` on CPU (gloo).

Each process takes an equal share of each epoch's batches and the gradients are averaged
every step, so two processes with --batch-size B make the steps one process makes with 2B:
half as many steps per epoch as one process at B. Only the main process evaluates, writes
the adapter, the checkpoints and the log, and reports.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from lift.services.critic.training.rule_data import write_rule_data
from tools.processes import python_module_command

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def _train(tmp: Path, model: Path, data: Path, test: Path, processes: int) -> tuple[str, Path]:
    out = tmp / f"out{processes}"
    args = ["critic", "train", "--data", str(data), "--eval", str(test), "--model", str(model),
            "--out", str(out), "--epochs", "2", "--batch-size", "2", "--lr", "3e-3",
            "--device", "cpu"]  # fmt: skip
    cmd = python_module_command(["lift.cli.main", *args], processes)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=500, cwd=tmp, env=env)
    assert run.returncode == 0, run.stderr[-4000:]
    return run.stdout, out


def test_two_processes_share_the_batches_and_the_main_one_reports(
    tmp_path: Path, tiny_critic_dir: Path
) -> None:
    data, test = write_rule_data(tmp_path / "data", train=4, test=2, seed=3)  # 12 ratings
    one_out, one = _train(tmp_path, tiny_critic_dir, data, test, 1)
    two_out, two = _train(tmp_path, tiny_critic_dir, data, test, 2)
    assert one_out.count("trained a LoRA") == 1
    assert two_out.count("trained a LoRA") == 1  # the other process says nothing
    logs = {
        n: [json.loads(x) for x in (d / "train_log.jsonl").read_text().splitlines()]
        for n, d in ((1, one), (2, two))
    }
    # 12 ratings, batch 2: 6 batches an epoch, one step each on one process, 3 on two
    assert [e["steps"] for e in logs[1]] == [0, 6, 12]
    assert [e["steps"] for e in logs[2]] == [0, 3, 6]
    assert logs[2][2]["loss"] < logs[2][1]["loss"]  # it learns
    assert logs[2][0]["eval"] is not None and logs[2][2]["eval"] is not None
    assert (two / "adapter_model.safetensors").is_file()
    assert sorted(p.name for p in (two / "checkpoints").iterdir()) == ["epoch-1", "epoch-2"]
    written = json.loads((two / "train_config.json").read_text())
    assert written["family"] == "qwen2_vl" and written["processes"] == 2
