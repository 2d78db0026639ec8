"""HTTP front of the trainer (FastAPI): translate JSON, delegate to the run manager."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, FastAPI, Header, Path, Query, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent

from lift.errors import InvalidInput, PayloadTooLarge
from lift.http import (
    JSON,
    body_kind,
    error_responses,
    register_schema,
    request_body,
    service_app,
)
from lift.runs import RunState
from lift.services.trainer.config import RunConfig
from lift.services.trainer.http_models import RunEventJSON, RunJSON, RunListJSON, TrainerInfoJSON
from lift.services.trainer.manager import RunManager
from lift.serving import WorkLimiter

# YAML has no single registered media type; these are the ones in use.
_YAML = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")

MAX_SEQ = 2**63 - 1
"""Event seqs are SQLite integers (signed 64 bit)."""

RunId = Annotated[str, Path(description="The run's id, as POST /v1/runs returned it.")]

_STREAM_EXAMPLE = (
    'event: state\ndata: {"run_id":"run-3f9a1c2e","seq":1,"time_unix_s":1767225600.0,'
    '"kind":"state","step":0,"message":"queued","data":{"state":"queued"}}\nid: 1\n\n'
)


_CONFIG_EXAMPLE = {
    "name": "dogs-on-beaches",
    "prompts": ["a dog runs on the beach", "a cat jumps onto a table"],
    "steps": 200,
    "batch_size": 4,
    "optimizer": {"lr": 1e-4},
}
_CONFIG_EXAMPLE_YAML = (
    "name: dogs-on-beaches\nprompts:\n  - a dog runs on the beach\n"
    "  - a cat jumps onto a table\nsteps: 200\nbatch_size: 4\noptimizer:\n  lr: 1.0e-4\n"
)


def create_app(manager: RunManager, limiter: WorkLimiter) -> FastAPI:
    """The trainer's FastAPI app."""
    app = service_app(
        "trainer",
        title="LiFT trainer",
        description="On-demand alignment runs: sample from the generator, score with the "
        "critic, reward-weighted fine-tuning, publish LoRA adapters.",
        is_ready=lambda: manager.ready,
    )
    limit = manager.settings.max_config_bytes
    event_ref = register_schema(app, RunEventJSON)

    async def known_run(run_id: RunId) -> str:
        """The run id, checked before a stream starts (a 404 after would be too late)."""
        await asyncio.to_thread(manager.get_run, run_id)
        return run_id

    async def resume_after(
        after: Annotated[
            int, Query(ge=0, le=MAX_SEQ, description="Only events after this seq.")
        ] = 0,
        last_event_id: Annotated[
            str | None,
            Header(
                alias="Last-Event-ID",
                description="Sent by EventSource on reconnection: resume after this seq.",
            ),
        ] = None,
    ) -> int:
        """The seq to resume after, checked before the stream starts (its 200 is sent first)."""
        if last_event_id is None:
            return after
        if (
            not (last_event_id.isascii() and last_event_id.isdigit())
            or int(last_event_id) > MAX_SEQ
        ):
            raise InvalidInput(
                "Last-Event-ID must be the id of an event this stream sent (its seq)"
            )
        return max(after, int(last_event_id))

    @app.post(
        "/v1/runs",
        tags=["trainer"],
        summary="Start a run from a config (JSON, or YAML with Content-Type application/yaml).",
        openapi_extra=request_body(
            app,
            {JSON: RunConfig, _YAML[0]: {"type": "string", "description": "The config as YAML."}},
            description="The run config; every field and its default is in the RunConfig "
            "schema. YAML carries the same fields.",
            examples={JSON: _CONFIG_EXAMPLE, _YAML[0]: _CONFIG_EXAMPLE_YAML},
        ),
        status_code=201,
        responses=error_responses(400, 413, 415, 429, 503),
    )
    async def start_run(request: Request) -> RunJSON:
        body_kind(request, (JSON, *_YAML), "send the run config as application/json or YAML")
        declared = request.headers.get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"the run config is {declared} bytes; the limit is {limit}")
        body = await request.body()
        if len(body) > limit:
            raise PayloadTooLarge(f"the run config is {len(body)} bytes; the limit is {limit}")
        return RunJSON.of(await asyncio.to_thread(manager.start_run, body))

    @app.get(
        "/v1/runs",
        tags=["trainer"],
        summary="Runs, newest first.",
        responses=error_responses(400, 503),
    )
    async def list_runs(
        state: Annotated[
            str,
            Query(
                description="Only runs in this state: "
                + ", ".join(s.value for s in RunState)
                + "; empty for all.",
                examples=["running"],
            ),
        ] = "",
        limit: Annotated[int, Query(ge=1, le=1000, description="Most runs in one page.")] = 100,
        page_token: Annotated[
            str,
            Query(
                description="The next_page_token of the previous page (same state filter); "
                "empty for the first page."
            ),
        ] = "",
    ) -> RunListJSON:
        runs, token = await asyncio.to_thread(manager.list_page, state, limit, page_token)
        return RunListJSON(runs=[RunJSON.of(r) for r in runs], next_page_token=token)

    @app.get(
        "/v1/runs/{run_id}",
        tags=["trainer"],
        summary="One run.",
        responses=error_responses(404, 503),
    )
    async def get_run(run_id: RunId) -> RunJSON:
        return RunJSON.of(await asyncio.to_thread(manager.get_run, run_id))

    @app.post(
        "/v1/runs/{run_id}:cancel",
        tags=["trainer"],
        summary="Cancel a queued or running run: it is cancelled when this returns.",
        responses=error_responses(404, 409, 503),
    )
    async def cancel_run(run_id: RunId) -> RunJSON:
        return RunJSON.of(await asyncio.to_thread(manager.cancel_run, run_id))

    @app.get(
        "/v1/runs/{run_id}/events",
        tags=["trainer"],
        summary="The run's events as server-sent events, live until it finishes. "
        "Resume with ?after=SEQ or the Last-Event-ID header.",
        response_class=EventSourceResponse,
        responses={
            200: {
                "description": "A text/event-stream: each event's name is the event's kind, "
                f"its id the event's seq, its data a RunEventJSON object as JSON (schema {event_ref}). The "
                "stream ends after the run's final state event.",
                "content": {
                    "text/event-stream": {
                        "itemSchema": {
                            "properties": {
                                "data": {
                                    "type": "string",
                                    "contentMediaType": "application/json",
                                    "contentSchema": {"$ref": event_ref},
                                }
                            },
                            "required": ["data", "event", "id"],
                        },
                        "example": _STREAM_EXAMPLE,
                    }
                },
            },
            **error_responses(400, 404, 503),
        },
    )
    async def events(
        # Defaults, not Annotated: the dependencies are local to this app.
        run_id: str = Depends(known_run),
        after: int = Depends(resume_after),
    ) -> AsyncIterator[ServerSentEvent]:
        async for e in manager.follow(run_id, after):
            yield ServerSentEvent(data=RunEventJSON.of(e), event=e.kind, id=str(e.seq))

    @app.get(
        "/v1/info",
        tags=["trainer"],
        summary="What this trainer is and holds.",
        responses=error_responses(503),
    )
    async def info() -> TrainerInfoJSON:
        return TrainerInfoJSON.model_validate(await asyncio.to_thread(manager.info))

    return app
