"""HTTP front of the trainer (FastAPI): translate JSON, delegate to the run manager."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from lift import __version__
from lift.errors import InvalidInput
from lift.http import install_common
from lift.services.trainer.config import RunConfig
from lift.services.trainer.manager import RunManager
from lift.serving import WorkLimiter

_RUN_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": RunConfig.model_json_schema()},
            "application/yaml": {"schema": {"type": "string"}},
        },
    }
}


def create_app(manager: RunManager, limiter: WorkLimiter) -> FastAPI:
    """The trainer's FastAPI app."""
    app = FastAPI(
        title="LiFT trainer",
        version=__version__,
        description="On-demand alignment runs: sample from the generator, score with the "
        "critic, reward-weighted fine-tuning, publish LoRA adapters.",
    )
    install_common(app, "trainer", lambda: manager.ready)
    limit = manager.settings.max_config_bytes

    @app.post(
        "/v1/runs",
        tags=["trainer"],
        summary="Start a run from a config (JSON, or YAML with Content-Type application/yaml).",
        openapi_extra=_RUN_BODY,
        status_code=201,
    )
    async def start_run(request: Request) -> dict[str, Any]:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise InvalidInput(f"the run config is {declared} bytes; the limit is {limit}")
        body = await request.body()
        run = await asyncio.to_thread(manager.start_run, body)
        return run.to_json()

    @app.get("/v1/runs", tags=["trainer"], summary="Runs, newest first.")
    async def list_runs(state: str = "", limit: int = 100) -> dict[str, Any]:
        runs = await asyncio.to_thread(manager.list_runs, state, limit)
        return {"runs": [r.to_json() for r in runs]}

    @app.get("/v1/runs/{run_id}", tags=["trainer"], summary="One run.")
    async def get_run(run_id: str) -> dict[str, Any]:
        return (await asyncio.to_thread(manager.get_run, run_id)).to_json()

    @app.post(
        "/v1/runs/{run_id}:cancel",
        tags=["trainer"],
        summary="Cancel a queued or running run (it stops before its next step).",
    )
    async def cancel_run(run_id: str) -> dict[str, Any]:
        return (await asyncio.to_thread(manager.cancel_run, run_id)).to_json()

    @app.get(
        "/v1/runs/{run_id}/events",
        tags=["trainer"],
        summary="The run's events as server-sent events, live until it finishes. "
        "Resume with ?after=SEQ or the Last-Event-ID header.",
        response_class=StreamingResponse,
    )
    async def events(request: Request, run_id: str, after: int = 0) -> StreamingResponse:
        last = request.headers.get("last-event-id", "")
        if last.isdigit():
            after = max(after, int(last))
        manager.get_run(run_id)  # 404 before the stream starts

        async def stream() -> AsyncIterator[bytes]:
            async for e in manager.follow(run_id, after):
                if await request.is_disconnected():
                    return
                data = json.dumps(e.to_json(), separators=(",", ":"))
                yield f"id: {e.seq}\nevent: {e.kind}\ndata: {data}\n\n".encode()

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.get("/v1/info", tags=["trainer"], summary="What this trainer is and holds.")
    async def info() -> dict[str, Any]:
        return manager.info()

    return app
