"""Small protobuf helpers the core types share: times, durations, and plain-data conversion.

Durations and times travel as ``google.protobuf.Duration`` / ``Timestamp``; our
dataclasses and the HTTP JSON keep float seconds. These convert at the edge.

:func:`message_to_data` and :func:`data_to_message` map a message to the JSON-able
data a pydantic model or dataclass would write (``model_dump(mode="json")``), using
the proto field names: unset ``optional`` scalars and unset sub-messages become
``None``, maps become dicts, 64-bit integers stay ints (``json_format`` would turn
them into strings). They are for messages whose field names equal the Python ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from google.protobuf import json_format
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from lift.errors import InvalidInput


def _split(s: float) -> tuple[int, int]:
    """Whole seconds and nanoseconds of ``s``, split before scaling so that epoch times
    keep their sub-microsecond digits (``s * 1e9`` would round them away)."""
    whole = math.floor(s)
    nanos = round((s - whole) * 1e9)
    if nanos == 1_000_000_000:
        return whole + 1, 0
    return whole, nanos


def duration(seconds: float) -> Duration:
    """A Duration of ``seconds`` (to the nanosecond)."""
    whole, nanos = _split(abs(seconds))
    sign = -1 if seconds < 0 else 1
    return Duration(seconds=sign * whole, nanos=sign * nanos)


def seconds(d: Duration) -> float:
    """The float seconds of a Duration."""
    return d.seconds + d.nanos / 1e9


def timestamp(unix_s: float) -> Timestamp:
    """A Timestamp of ``unix_s`` seconds since the epoch (to the nanosecond)."""
    whole, nanos = _split(unix_s)
    return Timestamp(seconds=whole, nanos=nanos)


def unix_s(t: Timestamp) -> float:
    """The float seconds since the epoch of a Timestamp."""
    return t.seconds + t.nanos / 1e9


def message_to_data(msg: Message, *, set_only: bool = False) -> dict[str, Any]:
    """Every field of ``msg`` as plain data, ``None`` for unset optional fields.

    ``set_only`` leaves out unset optional fields and empty repeated ones instead,
    so that whoever reads the data applies its own defaults.
    """
    out: dict[str, Any] = {}
    for f in msg.DESCRIPTOR.fields:
        value = getattr(msg, f.name)
        if f.is_repeated:
            if set_only and not value:
                continue
            if f.message_type is not None and f.message_type.GetOptions().map_entry:
                v_field = f.message_type.fields_by_name["value"]
                out[f.name] = {k: _plain(v_field, v, set_only) for k, v in value.items()}
            else:
                out[f.name] = [_plain(f, v, set_only) for v in value]
        elif f.has_presence and not msg.HasField(f.name):
            if not set_only:
                out[f.name] = None
        else:
            out[f.name] = _plain(f, value, set_only)
    return out


def _plain(f: Any, value: Any, set_only: bool) -> Any:  # f: a FieldDescriptor
    if f.message_type is not None:
        return message_to_data(value, set_only=set_only)
    if f.enum_type is not None:
        return f.enum_type.values_by_number[value].name
    return value


def data_to_message(data: Mapping[str, Any], msg: Message, what: str) -> Message:
    """Fill ``msg`` from plain data; ``None`` leaves a field unset.

    A key the message lacks, or a value of the wrong kind, is :class:`InvalidInput`
    naming ``what`` and the field.
    """
    try:
        json_format.ParseDict(_drop_none(data), msg)
    except json_format.ParseError as exc:
        # The first line names the field; the rest lists every field the message has.
        raise InvalidInput(f"invalid {what}: {str(exc).splitlines()[0]}") from None
    return msg


def _drop_none(data: Any) -> Any:
    if isinstance(data, Mapping):
        return {k: _drop_none(v) for k, v in data.items() if v is not None}
    if isinstance(data, list | tuple):
        return [_drop_none(v) for v in data]
    return data
