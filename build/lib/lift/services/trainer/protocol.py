"""Wire conversions for the trainer: run records and events to protobuf (JSON is their to_json)."""

from __future__ import annotations

import json
from typing import Any

from lift.runs import RunState
from lift.services.trainer.store import RunRecord
from lift.v1 import trainer_pb2

_STATE_TO_PROTO: dict[RunState, Any] = {
    s: trainer_pb2.RunState.Value(f"RUN_STATE_{s.name}") for s in RunState
}
_STATE_FROM_PROTO = {v: k for k, v in _STATE_TO_PROTO.items()}


def state_from_proto(value: int) -> str:
    """A RunState enum value as the store's state name ("" for unspecified)."""
    state = _STATE_FROM_PROTO.get(value)  # type: ignore[call-overload]
    return "" if state is None else state.value


def run_to_proto(run: RunRecord) -> trainer_pb2.Run:
    """A stored run as a lift.v1.Run."""
    return trainer_pb2.Run(
        id=run.id,
        name=run.name,
        state=_STATE_TO_PROTO[run.state],
        step=run.step,
        total_steps=run.total_steps,
        reason=run.reason,
        adapter_version=run.adapter_version,
        created_unix_s=run.created,
        started_unix_s=run.started or 0.0,
        finished_unix_s=run.finished or 0.0,
        resumes=run.resumes,
        config_json=json.dumps(run.config),
        result_json=json.dumps(run.result) if run.result is not None else "",
    )
