"""Client for the trainer over gRPC.

    from lift.client import TrainerClient

    with TrainerClient("localhost:50053") as trainer:
        run = trainer.start_run(Path("run.yaml").read_text())
        for event in trainer.watch(run.id):
            print(event.kind, event.message)
        print(trainer.get_run(run.id).result)

Runs come back as :class:`lift.runs.Run` and events as :class:`lift.runs.Event`,
whose fields (and ``to_json()``) are those of the trainer's HTTP JSON.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import grpc
import yaml

from lift.clients.base import ClientError, Credentials, GrpcClient
from lift.errors import InvalidInput
from lift.runs import (
    Event,
    Run,
    RunState,
    config_to_proto,
    event_from_proto,
    run_from_proto,
    state_to_proto,
)
from lift.trainer.v1 import trainer_pb2, trainer_pb2_grpc


class TrainerError(ClientError):
    """The trainer refused a request; ``code`` is the gRPC status name."""


def _config_message(config: str | bytes | Mapping[str, Any]) -> trainer_pb2.RunConfig:
    """A RunConfig from YAML/JSON text or parsed data; a malformed one is INVALID_ARGUMENT."""
    data: Any = config
    if isinstance(config, str | bytes):
        try:
            data = yaml.safe_load(config)  # YAML is a superset of JSON
        except yaml.YAMLError:
            raise TrainerError(
                "INVALID_ARGUMENT", "the run config is not valid YAML or JSON"
            ) from None
    if not isinstance(data, Mapping):
        raise TrainerError(
            "INVALID_ARGUMENT", "the run config must be a mapping of fields (YAML or JSON object)"
        )
    try:
        return config_to_proto(data)
    except InvalidInput as exc:
        raise TrainerError("INVALID_ARGUMENT", exc.message) from None


class TrainerClient(GrpcClient):
    """Blocking gRPC client. ``server`` is "host:port" or "grpc://host:port"."""

    error = TrainerError

    def __init__(
        self,
        server: str,
        timeout_s: float | None = 60.0,
        credentials: Credentials | None = None,
        token: str | None = None,
    ) -> None:
        super().__init__(server, trainer_pb2_grpc.TrainerServiceStub, timeout_s, credentials, token)

    def start_run(self, config: str | bytes | Mapping[str, Any]) -> Run:
        """Queue a run from its config: YAML/JSON text or the parsed mapping."""
        req = trainer_pb2.StartRunRequest(config=_config_message(config))
        return run_from_proto(self._unary("StartRun", req).run)

    def get_run(self, run_id: str) -> Run:
        """One run."""
        return run_from_proto(self._unary("GetRun", trainer_pb2.GetRunRequest(id=run_id)).run)

    def list_runs_page(
        self, page_size: int = 100, page_token: str = "", state: RunState | None = None
    ) -> tuple[list[Run], str]:
        """One page of runs, newest first, and the token of the next page ("" at the end)."""
        req = trainer_pb2.ListRunsRequest(page_size=page_size, page_token=page_token)
        if state is not None:
            req.state = state_to_proto(state)
        resp = self._unary("ListRuns", req)
        return [run_from_proto(r) for r in resp.runs], resp.next_page_token

    def list_runs(self, limit: int = 100, state: RunState | None = None) -> list[Run]:
        """Up to ``limit`` runs, newest first (as many pages as that takes)."""
        runs: list[Run] = []
        token = ""
        while len(runs) < limit:
            page, token = self.list_runs_page(min(limit - len(runs), 1000), token, state)
            runs += page
            if not token:
                break
        return runs

    def cancel_run(self, run_id: str) -> Run:
        """Cancel a run; the run after the request."""
        return run_from_proto(self._unary("CancelRun", trainer_pb2.CancelRunRequest(id=run_id)).run)

    def watch(self, run_id: str, after_seq: int = 0) -> Iterator[Event]:
        """The run's events, live, until it finishes (no deadline: runs take long)."""
        req = trainer_pb2.WatchRunRequest(id=run_id, after_seq=after_seq)
        call = self._stub.WatchRun(req, **{**self._call_kwargs(None), "timeout": None})
        try:
            for msg in call:
                yield event_from_proto(msg.event)
        except grpc.RpcError as exc:
            raise TrainerError.from_rpc(exc) from None
        finally:
            call.cancel()
