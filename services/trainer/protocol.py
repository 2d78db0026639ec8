"""Wire conversions for the trainer: stored run records to lift.trainer.v1 messages.

A :class:`RunRecord`'s JSON (what HTTP returns) has exactly the fields of
:class:`lift.runs.Run`, so both fronts go through the same record -> Run step and
a gRPC client sees the keys an HTTP client sees. Events convert in ``lift.runs``.
"""

from __future__ import annotations

import base64
import binascii
import json

from lift.errors import InvalidInput
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


# A page token is opaque to callers: base64 of the last run's (created, id) and the
# state filter it was made for. Paging by key, not offset, keeps pages stable while
# new runs arrive at the front of the list.


def page_token(last: RunRecord, state: str) -> str:
    """The token for the page after ``last``."""
    raw = json.dumps([last.created, last.id, state], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode()


def parse_page_token(token: str, state: str) -> tuple[float, str] | None:
    """The (created, id) a token continues after; None for the first page."""
    if not token:
        return None
    try:
        created, run_id, token_state = json.loads(base64.urlsafe_b64decode(token.encode()))
        if not isinstance(run_id, str) or not isinstance(created, int | float):
            raise ValueError
    except (ValueError, TypeError, binascii.Error):
        raise InvalidInput(
            "page_token is not a token this trainer issued: pass next_page_token as it came"
        ) from None
    if token_state != state:
        raise InvalidInput("page_token was issued for another state filter: keep the filter")
    return float(created), run_id
