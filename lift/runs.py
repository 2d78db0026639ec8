"""Alignment runs on the wire: their states and events, shared by the trainer and its clients.

Conversion to protobuf lives here too, as for critiques and generations; run
records (the trainer's stored rows) convert in ``services/trainer/protocol.py``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from lift.v1 import trainer_pb2


class RunState(StrEnum):
    """Where a run is. The last three are final."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        """True for succeeded, failed and cancelled."""
        return self in (RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED)


@dataclass(frozen=True)
class Event:
    """One thing that happened in a run; ``seq`` orders a run's events from 1."""

    run_id: str
    seq: int
    time: float
    kind: str
    step: int
    message: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The HTTP / SSE form."""
        return {
            "run_id": self.run_id,
            "seq": self.seq,
            "time_unix_s": self.time,
            "kind": self.kind,
            "step": self.step,
            "message": self.message,
            "data": self.data,
        }


@dataclass(frozen=True)
class StepMetrics:
    """What one optimizer step of a run measured: the data of its ``step`` event.

    The one record the training loop emits, the store keeps, the reward-hacking
    watch and the plot read, the CLI prints and the trainer service turns into
    Prometheus gauges. Its JSON form (:meth:`to_json`) is the ``data`` of a
    ``step`` event and a row of the run's stored metrics.
    """

    step: int
    """The optimizer step (from 1)."""
    loss: float
    """The objective that was minimised (generated and real clips combined by the strategy)."""
    gen_loss: float
    """Mean per-example diffusion loss on the step's generated (or offline) clips."""
    real_loss: float | None
    """Mean diffusion loss on the step's real clips (a guard); None without real data."""
    reward: float
    """Mean critic reward (Eq. 2) of the step's clips."""
    reward_by_dimension: Mapping[str, float]
    """Mean expected reward per judged dimension (empty for offline data)."""
    dynamic_degree: float | None
    """Mean dynamic degree the critic saw (a guard); None when it reported none."""
    kept: float | None
    """Share of the step's clips judged good on every dimension (rejection sampling keeps them)."""
    grad_norm: float
    """Gradient norm before clipping."""
    lr: float
    """Learning rate after the step's scheduler update."""
    clips: int
    """Generated (or offline) clips this process trained on."""
    real_clips: int
    """Real clips this process trained on."""
    seconds: float
    """Wall time of the step: sampling, scoring and the optimizer step."""
    samples_per_second: float
    """(clips + real_clips) / seconds."""

    def guards(self) -> dict[str, float | None]:
        """The guard signals the reward-hacking watch compares with the reward."""
        return {"dynamic_degree": self.dynamic_degree, "real_loss": self.real_loss}

    def to_json(self) -> dict[str, Any]:
        """The JSON form: a ``step`` event's data and a stored metrics row."""
        return {
            "step": self.step,
            "loss": self.loss,
            "gen_loss": self.gen_loss,
            "real_loss": self.real_loss,
            "reward": self.reward,
            "reward_by_dimension": dict(self.reward_by_dimension),
            "dynamic_degree": self.dynamic_degree,
            "kept": self.kept,
            "grad_norm": self.grad_norm,
            "lr": self.lr,
            "clips": self.clips,
            "real_clips": self.real_clips,
            "seconds": self.seconds,
            "samples_per_second": self.samples_per_second,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], step: int | None = None) -> StepMetrics:
        """Inverse of :meth:`to_json`; ``step`` overrides (or supplies) the step of ``data``.

        Unknown keys are ignored, so records written by a newer trainer still read.
        """

        def opt(key: str) -> float | None:
            value = data.get(key)
            return None if value is None else float(value)

        return cls(
            step=int(data["step"] if step is None else step),
            loss=float(data["loss"]),
            gen_loss=float(data["gen_loss"]),
            real_loss=opt("real_loss"),
            reward=float(data["reward"]),
            reward_by_dimension={
                str(k): float(v) for k, v in (data.get("reward_by_dimension") or {}).items()
            },
            dynamic_degree=opt("dynamic_degree"),
            kept=opt("kept"),
            grad_norm=float(data["grad_norm"]),
            lr=float(data["lr"]),
            clips=int(data["clips"]),
            real_clips=int(data["real_clips"]),
            seconds=float(data["seconds"]),
            samples_per_second=float(data["samples_per_second"]),
        )


def is_final_event(event: Event) -> bool:
    """True for the event that ends a run's stream (its final state)."""
    return event.kind == "state" and event.data.get("state") in {
        s.value for s in RunState if s.final
    }


def event_to_proto(e: Event) -> trainer_pb2.RunEvent:
    """A stored event as a lift.v1.RunEvent."""
    return trainer_pb2.RunEvent(
        run_id=e.run_id,
        seq=e.seq,
        time_unix_s=e.time,
        kind=e.kind,
        step=e.step,
        message=e.message,
        data_json=json.dumps(e.data),
    )


def event_from_proto(m: trainer_pb2.RunEvent) -> Event:
    """Inverse of :func:`event_to_proto` (clients)."""
    return Event(
        m.run_id, m.seq, m.time_unix_s, m.kind, m.step, m.message, json.loads(m.data_json or "{}")
    )
