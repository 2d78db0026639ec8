"""The trainer's typed wire: run config schema parity, runs, events, page tokens, lost adapters."""

from __future__ import annotations

import asyncio
import re
import threading
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from pydantic import BaseModel

from lift.client import AdapterNotFound, GeneratorError
from lift.errors import InvalidInput
from lift.runs import (
    EVENT_FIELDS,
    Event,
    Run,
    RunState,
    StepMetrics,
    config_from_proto,
    config_to_proto,
    event_from_proto,
    event_to_proto,
    run_from_proto,
    run_to_proto,
)
from lift.services.trainer.config import EndpointConfig, RunConfig, parse_run_config
from lift.services.trainer.manager import page_token, parse_page_token
from lift.services.trainer.remote import AdapterMissing, DependencyFailed, ReplicaPool
from lift.trainer.v1 import trainer_pb2

# -- schema parity: the pydantic run config and lift.trainer.v1.RunConfig ----------------

_INTS = {FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64}


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(the type inside ``X | None``, whether None is allowed)."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        assert len(args) == 1, annotation
        return args[0], True
    return annotation, False


def _check_scalar(where: str, py: Any, f: FieldDescriptor) -> None:
    if py in (str, Path) or get_origin(py) is Literal:
        assert f.type == FieldDescriptor.TYPE_STRING, where
    elif py is bool:
        assert f.type == FieldDescriptor.TYPE_BOOL, where
    elif py is int:
        assert f.type in _INTS, where
    elif py is float:
        assert f.type == FieldDescriptor.TYPE_DOUBLE, where
    else:
        raise AssertionError(f"{where}: no proto kind for {py!r}")


def _check_model(model: type[BaseModel], desc: Descriptor, path: str = "") -> int:
    """Assert field-by-field parity; returns how many fields were checked."""
    py_fields = model.model_fields
    assert set(py_fields) == set(desc.fields_by_name), f"{path or 'RunConfig'} fields differ"
    checked = 0
    hints = typing.get_type_hints(model)
    for name in py_fields:
        where = f"{path}{name}"
        f = desc.fields_by_name[name]
        py, nullable = _unwrap(hints[name])
        if isinstance(py, type) and issubclass(py, BaseModel):
            assert f.message_type is not None and not f.is_repeated, where
            checked += _check_model(py, f.message_type, where + ".")
        elif get_origin(py) in (list, tuple):
            assert f.is_repeated, f"{where} must be repeated"
            (item, *_) = get_args(py)
            _check_scalar(where, item, f)
        else:
            assert not f.is_repeated, where
            # Presence, so that an unset field takes the schema's default, not zero.
            assert f.has_presence, f"{where} must be `optional` in the proto"
            _check_scalar(where, py, f)
        assert not nullable or f.has_presence, where
        checked += 1
    return checked


def test_every_run_config_field_has_a_proto_field_of_its_kind() -> None:
    assert _check_model(RunConfig, trainer_pb2.RunConfig.DESCRIPTOR) > 50


FULL = {
    "name": "wire",
    "prompts": ["a dog runs", "a cat sleeps"],
    "steps": 7,
    "seed": 2**62,
    "optimizer": {"lr": 3e-3, "betas": [0.8, 0.9]},
    "lora": {"rank": 4, "target_modules": ["to_q"]},
    "sampling": {"num_frames": 9, "guidance_scale": 0.0},
    "real_data": {"path": "/data/real", "weight": 2.0},
    "eval": {"prompts": ["a bird"], "seeds": [3]},
    "guards": {"stop_on_warning": True},
}


def test_a_stored_config_survives_the_message_unchanged() -> None:
    stored = parse_run_config(FULL).to_json()  # every default filled in, nulls included
    assert config_from_proto(config_to_proto(stored)) == stored


def test_start_run_sends_only_what_the_user_set() -> None:
    sent = config_from_proto(config_to_proto(FULL), set_only=True)
    assert "batch_size" not in sent and sent["sampling"] == {"num_frames": 9, "guidance_scale": 0.0}
    # An explicit zero is kept (presence), and the schema fills in the rest.
    assert parse_run_config(sent) == parse_run_config(FULL)


def test_a_config_the_message_cannot_hold_is_refused_naming_the_field() -> None:
    with pytest.raises(InvalidInput, match="stepz"):
        config_to_proto({"stepz": 3})
    with pytest.raises(InvalidInput, match="steps"):
        config_to_proto({"steps": "many"})


# -- runs and events ---------------------------------------------------------------------


def test_run_round_trip_keeps_the_http_fields() -> None:
    run = Run(
        id="run-1",
        name="wire",
        state=RunState.SUCCEEDED,
        step=7,
        total_steps=7,
        reason="",
        adapter_version="run-1-s7",
        created_unix_s=1764441234.25,
        started_unix_s=1764441235.5,
        finished_unix_s=None,
        resumes=1,
        config=parse_run_config(FULL).to_json(),
        result={
            "steps": 7,
            "adapter_dir": "/runs/run-1/adapter",
            "adapter_version": "run-1-s7",
            "reward_before": 0.2,
            "reward_after": 0.4,
            "gain": 0.2,
            "ci95": None,
            "ci95_before": 0.01,
            "ci95_after": 0.02,
            "significant": False,
            "n": 1,
            "guards": {
                "dynamic_degree": {"before": 0.5, "after": 0.4},
                "real_loss": {"before": None, "after": None},
            },
            "warnings": ["dynamic_degree"],
        },
    )
    assert run_from_proto(run_to_proto(run)) == run
    assert list(run.to_json()) == [
        "id", "name", "state", "step", "total_steps", "reason", "adapter_version",
        "created_unix_s", "started_unix_s", "finished_unix_s", "resumes", "config", "result",
    ]  # fmt: skip


_STEP = StepMetrics(
    step=3,
    loss=0.5,
    gen_loss=0.25,
    real_loss=None,
    reward=0.4,
    reward_by_dimension={"motion_smoothness": 0.3},
    dynamic_degree=0.7,
    kept=None,
    grad_norm=1.5,
    lr=1e-3,
    clips=2,
    real_clips=0,
    seconds=0.75,
    samples_per_second=2.0 / 0.75,
)

EVENTS: list[tuple[str, dict[str, Any]]] = [
    ("state", {"state": "running"}),
    ("state", {"state": "failed", "reason": "the loss became nan"}),
    ("state", {"state": "succeeded", "reason": ""}),
    ("log", {}),
    ("log", {"model_load_seconds": 1.5}),
    ("step", _STEP.to_json()),
    (
        "eval",
        {
            "phase": "before",
            "version": "base",
            "rewards": [0.1, 0.2],
            "dynamic_degree": None,
            "real_loss": 0.3,
        },
    ),
    ("eval_progress", {"done": 1, "total": 4, "phase": "after"}),
    ("publish", {"version": "run-1-s2"}),
    ("checkpoint", {"path": "/runs/run-1/checkpoints/step-00000002"}),
    ("resumed", {"step": 2}),
    ("warning", {"guard": "dynamic_degree", "worsening": 0.4}),
]


@pytest.mark.parametrize(("kind", "data"), EVENTS)
def test_event_round_trip_keeps_kind_and_data(kind: str, data: dict[str, Any]) -> None:
    e = Event("run-1", 5, 1764441234.125, kind, 3, "something happened", data)
    msg = event_to_proto(e)
    assert msg.WhichOneof("details") == EVENT_FIELDS[kind]
    assert event_from_proto(msg) == e


def test_every_details_field_is_an_event_kind() -> None:
    oneof = trainer_pb2.RunEvent.DESCRIPTOR.oneofs_by_name["details"]
    assert {f.name for f in oneof.fields} == set(EVENT_FIELDS.values())


def test_every_kind_the_trainer_emits_has_a_details_field() -> None:
    """A new event kind in the trainer needs its typed message (else WatchRun fails)."""
    source = "".join(
        p.read_text()
        for p in (Path(__file__).resolve().parents[2] / "services" / "trainer").glob("*.py")
        if p.name != "protocol.py"
    )
    emitted = set(re.findall(r'emit\(\s*(?:\w+,\s*)?"(\w+)"', source))
    assert emitted and emitted <= set(EVENT_FIELDS), emitted - set(EVENT_FIELDS)


def test_an_unknown_event_kind_is_an_error_not_a_silent_loss() -> None:
    with pytest.raises(ValueError, match="sparkle"):
        event_to_proto(Event("run-1", 1, 0.0, "sparkle", 0, "", {}))


# -- page tokens -------------------------------------------------------------------------


def test_page_tokens_are_checked() -> None:
    class Last:
        created, id = 1764441234.5, "run-9"

    token = page_token(Last(), "succeeded")  # type: ignore[arg-type]
    assert parse_page_token(token, "succeeded") == (1764441234.5, "run-9")
    assert parse_page_token("", "") is None
    with pytest.raises(InvalidInput, match="page_token"):
        parse_page_token("not-a-token", "")
    with pytest.raises(InvalidInput, match="state filter"):
        parse_page_token(token, "failed")


def test_list_runs_pages_cover_every_run_once(tmp_path: Path) -> None:
    import grpc

    from lift.services.trainer.grpc_service import TrainerServicer
    from lift.services.trainer.manager import RunManager
    from lift.services.trainer.settings import TrainerSettings

    manager = RunManager(TrainerSettings(data_dir=tmp_path))
    manager.load()
    try:
        assert manager.store is not None
        config = parse_run_config({"prompts": ["a cat"]}).to_json()
        for i in range(7):  # stored only: no worker picks these up
            manager.store.create_run(f"run-{i}", f"r{i}", config, 1)
        servicer = TrainerServicer(manager, None)  # type: ignore[arg-type]

        def page(size: int, token: str = "") -> trainer_pb2.ListRunsResponse:
            req = trainer_pb2.ListRunsRequest(page_size=size, page_token=token)
            return asyncio.run(servicer.ListRuns(req, None))  # type: ignore[arg-type]

        ids, token, pages = [], "", 0
        while True:
            resp = page(3, token)
            ids += [r.id for r in resp.runs]
            pages += 1
            token = resp.next_page_token
            if not token:
                break
        assert pages == 3 and ids == [f"run-{i}" for i in reversed(range(7))]
        # A page that ends exactly at the last run says there is no next page.
        assert page(7).next_page_token == "" and len(page(7).runs) == 7

        with pytest.raises(InvalidInput, match="page_token"):
            page(3, "garbage")
        with pytest.raises(InvalidInput, match="page_size"):
            page(5000)
        assert InvalidInput.grpc_code == grpc.StatusCode.INVALID_ARGUMENT

        # HTTP pages through the same manager call: same order, same tokens, 400 on garbage.
        from fastapi.testclient import TestClient

        from lift.services.trainer.http_app import create_app
        from lift.serving import WorkLimiter

        http = TestClient(create_app(manager, WorkLimiter(1, 1)))
        ids, token = [], ""
        while True:
            body = http.get("/v1/runs", params={"limit": 3, "page_token": token}).json()
            ids += [r["id"] for r in body["runs"]]
            token = body["next_page_token"]
            if not token:
                break
        assert ids == [f"run-{i}" for i in reversed(range(7))]
        bad = http.get("/v1/runs", params={"page_token": "garbage"})
        assert bad.status_code == 400 and "page_token" in bad.json()["error"]["message"]
    finally:
        manager.close()


# -- a lost adapter, by status code ---------------------------------------------------------


class _NoClient:
    def close(self) -> None:
        pass


def _retrying() -> ReplicaPool[_NoClient]:
    endpoint = EndpointConfig(address="gen:1", retries=0)
    return ReplicaPool("generator", endpoint, threading.Event(), lambda _: _NoClient())


def test_a_lost_adapter_is_told_apart_by_its_status_code() -> None:
    def lost(_: object) -> None:
        raise AdapterNotFound("NOT_FOUND", "adapter version 'x' is not loaded")

    with pytest.raises(AdapterMissing):
        _retrying().call("Generate", lost)


def test_the_words_not_found_in_a_message_mean_nothing() -> None:
    def refused(_: object) -> None:
        raise GeneratorError("INVALID_ARGUMENT", "NOT_FOUND appears in this sentence")

    with pytest.raises(DependencyFailed) as err:
        _retrying().call("Generate", refused)
    assert not isinstance(err.value, AdapterMissing)
