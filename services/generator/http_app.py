"""HTTP front of the generator (FastAPI): translate JSON/multipart, delegate to the engine."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import FastAPI, Request, Response

from lift.generation import AdapterFiles, metadata_to_json
from lift.http import (
    JSON,
    MULTIPART,
    body_kind,
    error_responses,
    parse_json,
    read_form_model,
    read_json_body,
    request_body,
    run_until_disconnect,
    service_app,
)
from lift.services.generator.engine import GeneratorEngine
from lift.services.generator.http_models import (
    AdapterForm,
    AdapterJSON,
    AdapterListJSON,
    AdapterLoadJSON,
    AdapterPinJSON,
    AdapterPromotionJSON,
    GeneratedVideoJSON,
    GenerationJSON,
    GeneratorInfoJSON,
)
from lift.serving import WorkLimiter

# peft's adapter_config.json is small; a form's version label smaller still.
_MAX_CONFIG_BYTES = 1024 * 1024

_VIDEO_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The video file (the default), or with `Accept: application/json` "
        "a JSON object carrying it in base64 with its metadata.",
        "model": GeneratedVideoJSON,
        "content": {"video/mp4": {"schema": {"type": "string", "format": "binary"}}},
        "headers": {
            "X-Lift-Seed": {
                "description": "The noise seed used (video/mp4 replies).",
                "schema": {"type": "string"},
            },
            "X-Lift-Adapter-Version": {
                "description": 'The adapter version that made the video ("base": none).',
                "schema": {"type": "string"},
            },
            "X-Lift-Metadata": {
                "description": "The metadata object of the JSON reply, as compact JSON.",
                "schema": {"type": "string"},
            },
        },
    }
}


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "video/mp4" not in accept


def create_app(engine: GeneratorEngine, limiter: WorkLimiter) -> FastAPI:
    """The generator's FastAPI app."""
    app = service_app(
        "generator",
        title="LiFT generator",
        description="Text-to-video generation with a diffusers pipeline; LoRA adapters are "
        "swapped while it serves.",
        is_ready=lambda: engine.ready,
    )
    limit = engine.settings.max_adapter_bytes

    @app.post(
        "/v1/generations",
        tags=["generator"],
        summary="Generate one video (video/mp4; JSON with Accept: application/json).",
        openapi_extra=request_body(app, {JSON: GenerationJSON}),
        response_class=Response,
        responses={**_VIDEO_RESPONSE, **error_responses(400, 404, 415, 429, 503, 504)},
    )
    async def generations(request: Request) -> Response:
        body_kind(request, (JSON,), "send application/json")
        body = parse_json(GenerationJSON, await request.body())
        req = engine.resolve(body.to_request())  # bad input is refused before queueing
        with engine.hold(req.adapter_version):  # a queued request's version stays loaded
            video = await run_until_disconnect(request, limiter, lambda d: engine.generate(req, d))
        if _wants_json(request):
            reply = GeneratedVideoJSON.of(video)
            return Response(reply.model_dump_json(), media_type="application/json")
        meta = metadata_to_json(video.metadata)
        return Response(
            video.data,
            media_type=video.mime_type,
            headers={
                "X-Lift-Seed": str(meta["seed"]),
                "X-Lift-Adapter-Version": meta["adapter_version"],
                "X-Lift-Metadata": json.dumps(meta, separators=(",", ":")),
            },
        )

    @app.post(
        "/v1/adapters",
        tags=["generator"],
        summary="Install a LoRA adapter (peft or diffusers files) as a new version. It serves "
        "requests that name it; the default changes only by promotion.",
        openapi_extra=request_body(app, {JSON: AdapterJSON, MULTIPART: AdapterForm}),
        responses=error_responses(400, 404, 413, 415, 429, 503, 504),
    )
    async def adapters(request: Request) -> AdapterLoadJSON:
        kind = body_kind(
            request,
            (JSON, MULTIPART),
            "send application/json (version and uri, or version, weights_b64 and config) "
            "or multipart/form-data (fields version, weights and optionally config)",
        )
        source: AdapterFiles | str
        if kind == MULTIPART:
            form = await read_form_model(
                request,
                AdapterForm,
                {"weights": limit, "config": _MAX_CONFIG_BYTES},
                _MAX_CONFIG_BYTES,
            )
            version, source, pin = form.version, form.source(), form.pin
        else:
            body = parse_json(AdapterJSON, await read_json_body(request, limit, "adapter"))
            version, source, pin = body.version, body.source(), body.pin
        load = await asyncio.to_thread(engine.load_adapter, version, source, None, pin)
        return AdapterLoadJSON.of(load)

    @app.get(
        "/v1/adapters",
        tags=["generator"],
        summary="The default version and the loaded versions (with their pins).",
        responses=error_responses(503),
    )
    async def list_adapters() -> AdapterListJSON:
        return AdapterListJSON.of(engine.info())

    # Versions may hold "/" (a run's namespace, "run-7/s200"): the path converter takes it.
    @app.post(
        "/v1/adapters/{version:path}:promote",
        tags=["generator"],
        summary='Make a loaded version (or "base": no adapter) the default that requests '
        "naming no version get.",
        responses=error_responses(400, 404, 503),
    )
    async def promote_adapter(version: str) -> AdapterPromotionJSON:
        return AdapterPromotionJSON.of(engine.promote_adapter(version))

    @app.post(
        "/v1/adapters/{version:path}:pin",
        tags=["generator"],
        summary="Pin a loaded version: it is never unloaded to make room for newer ones.",
        responses=error_responses(400, 404, 503),
    )
    async def pin_adapter(version: str) -> AdapterPinJSON:
        return AdapterPinJSON.of(engine.pin_adapter(version, True))

    @app.post(
        "/v1/adapters/{version:path}:unpin",
        tags=["generator"],
        summary="Unpin a version (the default stays pinned while it is the default).",
        responses=error_responses(400, 404, 503),
    )
    async def unpin_adapter(version: str) -> AdapterPinJSON:
        return AdapterPinJSON.of(engine.pin_adapter(version, False))

    @app.get(
        "/v1/info",
        tags=["generator"],
        summary="Model, defaults, limits and adapters.",
        responses=error_responses(503),
    )
    async def info() -> GeneratorInfoJSON:
        return GeneratorInfoJSON.of(engine.info())

    return app
