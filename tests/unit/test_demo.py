"""`lift align --demo`'s determinism and evaluation controls (cheap: no training run)."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import pytest
import torch
from typer.testing import CliRunner

from lift.cli.main import app
from lift.services.trainer import demo
from lift.services.trainer.config import parse_run_config
from lift.services.trainer.data import decode_all


@pytest.fixture
def threads_restored():  # type: ignore[no-untyped-def]
    torch_n, cv_n = torch.get_num_threads(), cv2.getNumThreads()
    yield
    torch.set_num_threads(torch_n)
    cv2.setNumThreads(cv_n)


def test_eval_set_is_large_and_held_out(tmp_path: Path) -> None:
    cfg = demo.demo_config("127.0.0.1:1", "127.0.0.1:2", tmp_path)
    ev = cfg["eval"]
    assert len(ev["prompts"]) * len(ev["seeds"]) >= 48  # a CI tight enough for gain >= 2x CI
    assert len(set(ev["prompts"])) == len(ev["prompts"]) and len(set(ev["seeds"])) == len(
        ev["seeds"]
    )
    assert not set(ev["prompts"]) & set(cfg["prompts"])
    assert cfg["seed"] == 0
    parse_run_config(cfg)  # a valid run config


def test_pin_threads_sets_torch_and_opencv(
    threads_restored: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LIFT_DEMO_THREADS", raising=False)
    torch.set_num_threads(1 if demo.DEMO_THREADS != 1 else 2)
    assert demo.pin_threads() == demo.DEMO_THREADS
    assert torch.get_num_threads() == demo.DEMO_THREADS
    assert cv2.getNumThreads() == demo.DEMO_THREADS
    monkeypatch.setenv("LIFT_DEMO_THREADS", "3")
    assert demo.pin_threads() == 3 and torch.get_num_threads() == 3
    monkeypatch.setenv("LIFT_DEMO_THREADS", "many")
    with pytest.raises(ValueError, match="LIFT_DEMO_THREADS"):
        demo.pin_threads()


class _Pinned(Exception):
    pass


def test_align_demo_pins_threads_before_starting_services(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[str] = []

    def pin(threads: int | None = None) -> int:
        calls.append("pin")
        raise _Pinned  # stop before the services start

    monkeypatch.setattr(demo, "pin_threads", pin)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["align", "--demo", "--json"])
    assert calls == ["pin"] and isinstance(result.exception, _Pinned)


def test_real_clips_are_written_at_the_training_size_with_one_encoder_thread(
    tmp_path: Path,
) -> None:
    out = demo.write_real_clips(tmp_path / "real")
    data = (out / "clean-0.mp4").read_bytes()
    # x264's settings (in its SEI) name its thread count: one thread on any machine.
    assert re.search(rb"threads=1 lookahead_threads=1 sliced_threads=0", data)
    assert decode_all(data, "real clip").shape[:3] == (demo.FRAMES, demo.HEIGHT, demo.WIDTH)
    assert data == (demo.write_real_clips(tmp_path / "again") / "clean-0.mp4").read_bytes()


def test_demo_seed_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("LIFT_DEMO_SEED", raising=False)
    assert demo.demo_seed() == 0
    monkeypatch.setenv("LIFT_DEMO_SEED", "2")
    assert demo.demo_config(None, None, tmp_path, seed=demo.demo_seed())["seed"] == 2
    monkeypatch.setenv("LIFT_DEMO_SEED", "-1")
    with pytest.raises(ValueError, match="LIFT_DEMO_SEED"):
        demo.demo_seed()
