"""Alignment runs on the wire: runs, their states, events and step metrics.

Shared by the trainer and its clients. Conversion to and from the
lift.trainer.v1 messages lives here too (as for critiques and generations), in
one place: a :class:`Run` and an :class:`Event` carry the field names of the
HTTP JSON, so a client gets the same keys over gRPC as over HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from lift.trainer.v1 import trainer_pb2
from lift.wire import (
    data_to_message,
    duration,
    message_to_data,
    seconds,
    timestamp,
    unix_s,
)


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


@dataclass(frozen=True)
class Run:
    """One alignment run as a client sees it; the fields (and :meth:`to_json`) are the HTTP JSON.

    ``config`` is the validated run config with every default filled in, and
    ``result`` the outcome of a succeeded run (None before), both as JSON data.
    """

    id: str
    name: str
    state: RunState
    step: int
    total_steps: int
    reason: str
    adapter_version: str
    created_unix_s: float
    started_unix_s: float | None
    finished_unix_s: float | None
    resumes: int
    config: dict[str, Any]
    result: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        """The JSON of GET /v1/runs/{id}."""
        data = asdict(self)
        data["state"] = self.state.value
        return data


# -- protobuf ------------------------------------------------------------------

_STATE_TO_PROTO: dict[RunState, Any] = {  # enum values, typed per enum in the stubs
    s: trainer_pb2.RunState.Value(f"RUN_STATE_{s.name}") for s in RunState
}
_STATE_FROM_PROTO = {v: k for k, v in _STATE_TO_PROTO.items()}

# Event kind (the HTTP JSON's "kind") -> the RunEvent.details field that carries it.
EVENT_FIELDS: dict[str, str] = {
    "state": "state_change",
    "log": "log",
    "step": "step_metrics",
    "eval": "evaluation",
    "eval_progress": "evaluation_progress",
    "publish": "adapter_published",
    "checkpoint": "checkpoint_written",
    "resumed": "resumed",
    "warning": "warning",
}
_EVENT_KINDS = {v: k for k, v in EVENT_FIELDS.items()}


def state_to_proto(state: RunState) -> Any:
    """The lift.trainer.v1.RunState value of ``state``."""
    return _STATE_TO_PROTO[state]


def state_from_proto(value: int) -> RunState | None:
    """The :class:`RunState` of a lift.trainer.v1.RunState value (None for unspecified)."""
    return _STATE_FROM_PROTO.get(value)


def config_to_proto(config: Mapping[str, Any]) -> trainer_pb2.RunConfig:
    """Run-config data (YAML/JSON fields) as a lift.trainer.v1.RunConfig.

    ``None`` leaves a field unset. An unknown field or a value of the wrong kind is
    :class:`~lift.errors.InvalidInput` naming it; the values themselves are checked
    by the trainer's schema when the run starts.
    """
    msg = trainer_pb2.RunConfig()
    data_to_message(config, msg, "run config")
    return msg


def config_from_proto(msg: trainer_pb2.RunConfig, *, set_only: bool = False) -> dict[str, Any]:
    """A RunConfig as run-config data.

    ``set_only`` keeps only the fields the sender set (unset ones then take the
    schema's defaults when validated); otherwise unset fields are ``None``, as in a
    stored config whose defaults are all filled in.
    """
    return message_to_data(msg, set_only=set_only)


def step_metrics_to_proto(m: StepMetrics) -> trainer_pb2.StepMetrics:
    """A step's metrics as a lift.trainer.v1.StepMetrics."""
    msg = trainer_pb2.StepMetrics(
        step=m.step,
        loss=m.loss,
        gen_loss=m.gen_loss,
        reward=m.reward,
        reward_by_dimension=dict(m.reward_by_dimension),
        grad_norm=m.grad_norm,
        lr=m.lr,
        clips=m.clips,
        real_clips=m.real_clips,
        duration=duration(m.seconds),
        samples_per_second=m.samples_per_second,
    )
    for name in ("real_loss", "dynamic_degree", "kept"):
        value = getattr(m, name)
        if value is not None:
            setattr(msg, name, value)
    return msg


def step_metrics_from_proto(msg: trainer_pb2.StepMetrics) -> StepMetrics:
    """Inverse of :func:`step_metrics_to_proto`."""

    def opt(name: str) -> float | None:
        return getattr(msg, name) if msg.HasField(name) else None

    return StepMetrics(
        step=msg.step,
        loss=msg.loss,
        gen_loss=msg.gen_loss,
        real_loss=opt("real_loss"),
        reward=msg.reward,
        reward_by_dimension=dict(msg.reward_by_dimension),
        dynamic_degree=opt("dynamic_degree"),
        kept=opt("kept"),
        grad_norm=msg.grad_norm,
        lr=msg.lr,
        clips=msg.clips,
        real_clips=msg.real_clips,
        seconds=seconds(msg.duration),
        samples_per_second=msg.samples_per_second,
    )


def run_to_proto(run: Run) -> trainer_pb2.Run:
    """A run as a lift.trainer.v1.Run."""
    msg = trainer_pb2.Run(
        id=run.id,
        name=run.name,
        state=_STATE_TO_PROTO[run.state],
        step=run.step,
        total_steps=run.total_steps,
        reason=run.reason,
        adapter_version=run.adapter_version,
        create_time=timestamp(run.created_unix_s),
        resumes=run.resumes,
        config=config_to_proto(run.config),
    )
    if run.started_unix_s is not None:
        msg.start_time.CopyFrom(timestamp(run.started_unix_s))
    if run.finished_unix_s is not None:
        msg.finish_time.CopyFrom(timestamp(run.finished_unix_s))
    if run.result is not None:
        data_to_message(run.result, msg.result, "run result")
        msg.result.SetInParent()
    return msg


def run_from_proto(msg: trainer_pb2.Run) -> Run:
    """Inverse of :func:`run_to_proto` (clients)."""
    state = _STATE_FROM_PROTO.get(msg.state)
    if state is None:
        raise ValueError(f"run {msg.id} has no state")
    return Run(
        id=msg.id,
        name=msg.name,
        state=state,
        step=msg.step,
        total_steps=msg.total_steps,
        reason=msg.reason,
        adapter_version=msg.adapter_version,
        created_unix_s=unix_s(msg.create_time),
        started_unix_s=unix_s(msg.start_time) if msg.HasField("start_time") else None,
        finished_unix_s=unix_s(msg.finish_time) if msg.HasField("finish_time") else None,
        resumes=msg.resumes,
        config=config_from_proto(msg.config),
        result=message_to_data(msg.result) if msg.HasField("result") else None,
    )


def event_to_proto(e: Event) -> trainer_pb2.RunEvent:
    """A stored event as a lift.trainer.v1.RunEvent; its kind picks the details field."""
    msg = trainer_pb2.RunEvent(
        run_id=e.run_id, seq=e.seq, time=timestamp(e.time), step=e.step, message=e.message
    )
    name = EVENT_FIELDS.get(e.kind)
    if name is None:
        raise ValueError(f"event kind {e.kind!r} has no lift.trainer.v1.RunEvent field")
    if e.kind == "state":
        msg.state_change.state = _STATE_TO_PROTO[RunState(e.data["state"])]
        msg.state_change.reason = e.data.get("reason", "")
    elif e.kind == "step":
        msg.step_metrics.CopyFrom(step_metrics_to_proto(StepMetrics.from_json(e.data, e.step)))
    elif e.kind == "log":
        msg.log.SetInParent()
        unknown = set(e.data) - {"model_load_seconds"}
        if unknown:
            raise ValueError(f"log event data has fields the proto lacks: {sorted(unknown)}")
        if "model_load_seconds" in e.data:
            msg.log.model_load.CopyFrom(duration(e.data["model_load_seconds"]))
    else:
        details = getattr(msg, name)
        details.SetInParent()  # a details message with every field unset still says the kind
        data_to_message(e.data, details, f"{e.kind} event")
    return msg


def event_from_proto(m: trainer_pb2.RunEvent) -> Event:
    """Inverse of :func:`event_to_proto` (clients): ``data`` is the HTTP JSON's."""
    name = m.WhichOneof("details")
    if name is None:
        raise ValueError(f"event {m.seq} of run {m.run_id} has no details")
    data: dict[str, Any]
    if name == "state_change":
        state = _STATE_FROM_PROTO.get(m.state_change.state)
        data = {"state": state.value if state else ""}
        # The trainer gives every final state a reason ("" when it succeeded), no other.
        if m.state_change.reason or (state is not None and state.final):
            data["reason"] = m.state_change.reason
    elif name == "step_metrics":
        data = step_metrics_from_proto(m.step_metrics).to_json()
    elif name == "log":
        data = {}
        if m.log.HasField("model_load"):
            data["model_load_seconds"] = seconds(m.log.model_load)
    else:
        data = message_to_data(getattr(m, name))
    return Event(m.run_id, m.seq, unix_s(m.time), _EVENT_KINDS[name], m.step, m.message, data)
