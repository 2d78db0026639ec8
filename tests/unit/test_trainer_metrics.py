"""The trainer's Prometheus metrics come from run events, in one place (RunMetrics)."""

from __future__ import annotations

import time

import pytest
from prometheus_client import REGISTRY

from lift.runs import Event, RunState, StepMetrics
from lift.services.trainer import metrics
from lift.services.trainer.guards import GUARDS


def _value(name: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, labels)
    assert value is not None, (name, labels)
    return value


def _event(kind: str, data: dict, step: int = 0, when: float | None = None) -> Event:
    return Event("run-x", 1, time.time() if when is None else when, kind, step, "", data)


def _step(step: int) -> StepMetrics:
    return StepMetrics(
        step=step,
        loss=0.25,
        gen_loss=0.2,
        real_loss=1.5,
        reward=0.6,
        reward_by_dimension={"motion_smoothness": 0.7},
        dynamic_degree=None,
        kept=None,
        grad_norm=1.0,
        lr=1e-4,
        clips=2,
        real_clips=1,
        seconds=0.5,
        samples_per_second=6.0,
    )


def test_guard_names_are_the_step_records_guards() -> None:
    assert set(GUARDS) == set(_step(1).guards())


def test_events_set_the_metrics() -> None:
    counts = {s: 0 for s in RunState} | {RunState.RUNNING: 1}
    sink = metrics.RunMetrics(lambda: counts)
    steps_before = _value("lift_trainer_step_seconds_count")
    published = _value("lift_trainer_adapters_published_total")
    warned = _value("lift_trainer_reward_hacking_warnings_total", guard="real_loss")
    succeeded = _value("lift_trainer_runs_finished_total", state="succeeded")

    sink.observe(_event("state", {"state": "running"}))
    assert _value("lift_trainer_runs", state="running") == 1
    sink.observe(_event("log", {"model_load_seconds": 2.5}))
    assert _value("lift_trainer_model_load_seconds") == 2.5
    assert metrics.CHECKPOINT_CLOCK.since is not None
    sink.observe(_event("log", {}))  # a plain note changes nothing
    sink.observe(_event("step", _step(7).to_json(), step=7))
    assert _value("lift_trainer_step") == 7
    assert _value("lift_trainer_loss") == 0.25
    assert _value("lift_trainer_samples_per_second") == 6.0
    assert _value("lift_trainer_step_seconds_count") == steps_before + 1
    assert _value("lift_trainer_reward", dimension="mean") == 0.6
    assert _value("lift_trainer_reward", dimension="motion_smoothness") == 0.7
    assert _value("lift_trainer_guard", guard="real_loss") == 1.5
    sink.observe(_event("warning", {"guard": "real_loss", "worsening": 0.5}, step=7))
    assert _value("lift_trainer_reward_hacking_warnings_total", guard="real_loss") == warned + 1
    sink.observe(_event("publish", {"version": "run-x-s7"}, step=7))
    assert _value("lift_trainer_adapters_published_total") == published + 1
    sink.observe(_event("checkpoint", {"path": "/tmp/x"}, step=7, when=1234.5))
    assert _value("lift_trainer_last_checkpoint_timestamp_seconds") == 1234.5
    assert _value("lift_trainer_checkpoint_age_seconds") == pytest.approx(0, abs=5)

    counts = {s: 0 for s in RunState} | {RunState.SUCCEEDED: 1}
    sink.observe(_event("state", {"state": "succeeded", "reason": ""}, step=7))
    assert _value("lift_trainer_runs_finished_total", state="succeeded") == succeeded + 1
    assert _value("lift_trainer_runs", state="running") == 0
    sink.run_ended()
    assert _value("lift_trainer_checkpoint_age_seconds") == 0
