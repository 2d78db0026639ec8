"""Wire conversions for the trainer: stored run records to lift.trainer.v1 messages.

A :class:`RunRecord`'s JSON (what HTTP returns) has exactly the fields of
:class:`lift.runs.Run`, so both fronts go through the same record -> Run step and
a gRPC client sees the keys an HTTP client sees. Events convert in ``lift.runs``.
"""

from __future__ import annotations

from lift.runs import Run, RunState, run_to_proto, state_from_proto
from lift.services.trainer.store import RunRecord
from lift.trainer.v1 import trainer_pb2


def record_to_run(run: RunRecord) -> Run:
    """A stored run as the shared :class:`Run` (the HTTP JSON's fields)."""
    data = run.to_json()
    data["state"] = RunState(data["state"])
    return Run(**data)


def record_to_proto(run: RunRecord) -> trainer_pb2.Run:
    """A stored run as a lift.trainer.v1.Run."""
    return run_to_proto(record_to_run(run))


def state_name(value: int) -> str:
    """A RunState enum value as the store's state name ("" for unspecified)."""
    state = state_from_proto(value)
    return "" if state is None else state.value
