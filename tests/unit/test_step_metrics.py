"""StepMetrics: the one per-step record of a run, and its JSON form."""

from __future__ import annotations

import dataclasses

import pytest

from lift.runs import StepMetrics


def _metrics(**over: object) -> StepMetrics:
    base: dict[str, object] = {
        "step": 3,
        "loss": 0.5,
        "gen_loss": 0.4,
        "real_loss": None,
        "reward": 0.7,
        "reward_by_dimension": {"motion_smoothness": 0.9, "video_fidelity": 0.5},
        "dynamic_degree": 0.25,
        "kept": None,
        "grad_norm": 1.5,
        "lr": 1e-4,
        "clips": 2,
        "real_clips": 0,
        "seconds": 0.5,
        "samples_per_second": 4.0,
    }
    base.update(over)
    return StepMetrics(**base)  # type: ignore[arg-type]


def test_json_round_trip_keeps_every_field() -> None:
    m = _metrics(real_loss=0.125, kept=0.5)
    data = m.to_json()
    assert set(data) == {f.name for f in dataclasses.fields(StepMetrics)}
    assert StepMetrics.from_json(data) == m


def test_from_json_takes_the_step_from_the_event_and_ignores_unknown_keys() -> None:
    data = _metrics().to_json()
    del data["step"]
    data["added_by_a_newer_trainer"] = 1
    assert StepMetrics.from_json(data, step=7) == _metrics(step=7)


def test_from_json_refuses_a_record_without_a_loss() -> None:
    data = _metrics().to_json()
    del data["loss"]
    with pytest.raises(KeyError):
        StepMetrics.from_json(data)


def test_guards_are_the_signals_the_watch_reads() -> None:
    assert _metrics(real_loss=0.3).guards() == {"dynamic_degree": 0.25, "real_loss": 0.3}


def test_record_is_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        _metrics().loss = 1.0  # type: ignore[misc]
