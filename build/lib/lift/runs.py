"""Alignment runs on the wire: their states and events, shared by the trainer and its clients.

Conversion to protobuf lives here too, as for critiques and generations; run
records (the trainer's stored rows) convert in ``services/trainer/protocol.py``.
"""

from __future__ import annotations

import json
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
