"""HTTP front of the generator (FastAPI): translate JSON/multipart, delegate to the engine."""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import asdict
from typing import Any

from fastapi import FastAPI, Request, Response
from starlette.datastructures import UploadFile

from lift import __version__
from lift.errors import InvalidInput
from lift.generation import AdapterFiles, metadata_to_json
from lift.http import (
    install_common,
    parse_json,
    read_form,
    read_json_body,
    read_upload,
    run_until_disconnect,
)
from lift.services.generator.engine import GeneratorEngine
from lift.services.generator.protocol import AdapterJSON, GenerationJSON
from lift.serving import WorkLimiter

_GENERATION_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": GenerationJSON.model_json_schema()}},
    },
    "responses": {
        "200": {
            "description": "The video (video/mp4), or JSON with it in base64 and its metadata "
            "when the request says Accept: application/json.",
            "content": {"video/mp4": {}, "application/json": {}},
        }
    },
}
_ADAPTER_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": AdapterJSON.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["version", "weights"],
                    "properties": {
                        "version": {"type": "string"},
                        "weights": {"type": "string", "format": "binary"},
                        "config": {"type": "string", "format": "binary"},
                    },
                }
            },
        },
    }
}


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "video/mp4" not in accept


def create_app(engine: GeneratorEngine, limiter: WorkLimiter) -> FastAPI:
    """The generator's FastAPI app."""
    app = FastAPI(
        title="LiFT generator",
        version=__version__,
        description="Text-to-video generation with a diffusers pipeline; LoRA adapters are "
        "swapped while it serves.",
    )
    install_common(app, "generator", lambda: engine.ready)
    limit = engine.settings.max_adapter_bytes

    @app.post(
        "/v1/generations",
        tags=["generator"],
        summary="Generate one video (video/mp4; JSON with Accept: application/json).",
        openapi_extra=_GENERATION_BODY,
        response_model=None,
    )
    async def generations(request: Request) -> Response:
        body = parse_json(GenerationJSON, await request.body())
        req = engine.resolve(body.to_request())  # bad input is refused before queueing
        video = await run_until_disconnect(request, limiter, lambda d: engine.generate(req, d))
        meta = metadata_to_json(video.metadata)
        if _wants_json(request):
            return Response(
                json.dumps(
                    {
                        "video_b64": base64.b64encode(video.data).decode("ascii"),
                        "mime_type": video.mime_type,
                        "metadata": meta,
                    }
                ),
                media_type="application/json",
            )
        return Response(
            video.data,
            media_type=video.mime_type,
            headers={
                "X-Lift-Seed": str(meta["seed"]),
                "X-Lift-Adapter-Version": meta["adapter_version"],
                "X-Lift-Metadata": json.dumps(meta, separators=(",", ":")),
            },
        )

    async def _multipart_adapter(request: Request) -> tuple[str, AdapterFiles]:
        form = await read_form(request, max_files=2, max_part_size=limit + 1)
        version, weights, config = form.get("version"), form.get("weights"), form.get("config")
        if not isinstance(version, str):
            raise InvalidInput("multipart body needs a text field named 'version'")
        if not isinstance(weights, UploadFile):
            raise InvalidInput("multipart body needs a file field named 'weights'")
        data = await read_upload(weights, limit, "adapter")
        config_json = None
        if isinstance(config, UploadFile):
            config_json = (await config.read(1024 * 1024)).decode("utf-8", errors="replace")
        elif isinstance(config, str):
            config_json = config
        return version, AdapterFiles(data, config_json)

    @app.post(
        "/v1/adapters",
        tags=["generator"],
        summary="Install a LoRA adapter (peft files) as a new version; in-flight videos finish "
        "on the old one.",
        openapi_extra=_ADAPTER_BODY,
    )
    async def adapters(request: Request) -> dict[str, Any]:
        ctype = request.headers.get("content-type", "")
        source: AdapterFiles | str
        if ctype.startswith("multipart/form-data"):
            version, source = await _multipart_adapter(request)
        elif ctype.startswith("application/json"):
            body = parse_json(AdapterJSON, await read_json_body(request, limit, "adapter"))
            version, source = body.version, body.source()
        else:
            raise InvalidInput(
                "send application/json (version and uri, or version, weights_b64 and config) "
                "or multipart/form-data (fields version, weights and optionally config)"
            )
        return asdict(await asyncio.to_thread(engine.load_adapter, version, source))

    @app.get("/v1/info", tags=["generator"], summary="Model, defaults, limits and adapters.")
    async def info() -> dict[str, Any]:
        return engine.info().to_json()

    return app
