"""Python client for the trainer over gRPC.

from lift.trainer_client import TrainerClient

with TrainerClient("localhost:50053") as trainer:
    run = trainer.start_run(Path("run.yaml").read_text())
    for event in trainer.watch(run["id"]):
        print(event.kind, event.message)
    print(trainer.get_run(run["id"])["result"])
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import grpc

from lift.runs import Event, event_from_proto
from lift.v1 import trainer_pb2, trainer_pb2_grpc


class TrainerError(Exception):
    """The trainer refused a request; ``code`` is the gRPC status name."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _run(msg: trainer_pb2.Run) -> dict[str, Any]:
    return {
        "id": msg.id,
        "name": msg.name,
        "state": trainer_pb2.RunState.Name(msg.state).removeprefix("RUN_STATE_").lower(),
        "step": msg.step,
        "total_steps": msg.total_steps,
        "reason": msg.reason,
        "adapter_version": msg.adapter_version,
        "resumes": msg.resumes,
        "config": json.loads(msg.config_json or "{}"),
        "result": json.loads(msg.result_json) if msg.result_json else None,
    }


class TrainerClient:
    """Blocking gRPC client. ``server`` is "host:port" or "grpc://host:port"."""

    def __init__(self, server: str, timeout_s: float = 60.0) -> None:
        self.timeout_s = timeout_s
        self._channel = grpc.insecure_channel(server.removeprefix("grpc://"))
        self._stub = trainer_pb2_grpc.TrainerServiceStub(self._channel)

    def __enter__(self) -> TrainerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        self._channel.close()

    def _call(self, method: str, request: Any) -> Any:
        try:
            return getattr(self._stub, method)(request, timeout=self.timeout_s)
        except grpc.RpcError as exc:
            raise TrainerError(exc.code().name, exc.details() or "") from None  # type: ignore[attr-defined]

    def start_run(self, config: str) -> dict[str, Any]:
        """Queue a run from YAML/JSON config text; the run as a dict."""
        return _run(self._call("StartRun", trainer_pb2.StartRunRequest(config=config)).run)

    def get_run(self, run_id: str) -> dict[str, Any]:
        """One run as a dict."""
        return _run(self._call("GetRun", trainer_pb2.GetRunRequest(id=run_id)).run)

    def list_runs(self, limit: int = 100) -> list[dict[str, Any]]:
        """Runs, newest first."""
        resp = self._call("ListRuns", trainer_pb2.ListRunsRequest(limit=limit))
        return [_run(r) for r in resp.runs]

    def cancel_run(self, run_id: str) -> dict[str, Any]:
        """Cancel a run; the run as a dict."""
        return _run(self._call("CancelRun", trainer_pb2.CancelRunRequest(id=run_id)).run)

    def watch(self, run_id: str, after_seq: int = 0) -> Iterator[Event]:
        """The run's events, live, until it finishes."""
        call = self._stub.WatchRun(trainer_pb2.WatchRunRequest(id=run_id, after_seq=after_seq))
        try:
            for msg in call:
                yield event_from_proto(msg.event)
        except grpc.RpcError as exc:
            raise TrainerError(exc.code().name, exc.details() or "") from None  # type: ignore[attr-defined]
        finally:
            call.cancel()
