"""HTTP front of the critic (FastAPI): translate JSON/multipart, delegate to the engine."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from starlette.datastructures import UploadFile

from lift import __version__
from lift.critique import to_json
from lift.errors import InvalidInput
from lift.http import (
    error_body,
    install_common,
    parse_json,
    read_form,
    read_json_body,
    read_upload,
)
from lift.services.critic.engine import CriticEngine, VideoSource
from lift.services.critic.protocol import ScoreJSON, VideoJSON
from lift.serving import Deadline, WorkLimiter

_CRITIQUE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["video", "prompt"],
                    "properties": {
                        "video": {"type": "string", "format": "binary"},
                        "prompt": {"type": "string"},
                    },
                }
            },
            "application/json": {"schema": VideoJSON.model_json_schema()},
        },
    }
}
_SCORES_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": ScoreJSON.model_json_schema()}},
    }
}


def create_app(engine: CriticEngine, limiter: WorkLimiter) -> FastAPI:
    """The critic's FastAPI app."""
    app = FastAPI(
        title="LiFT critic",
        version=__version__,
        description="Judges a generated video against its prompt: semantic consistency, "
        "motion smoothness and video fidelity, with labels, scores and reasons.",
    )
    install_common(app, "critic", lambda: engine.ready)
    limit = engine.settings.max_video_bytes

    async def _multipart(request: Request) -> tuple[VideoSource, str]:
        form = await read_form(request, max_files=1, max_part_size=1024 * 1024)
        video, prompt = form.get("video"), form.get("prompt")
        if not isinstance(video, UploadFile):
            raise InvalidInput("multipart body needs a file field named 'video'")
        if not isinstance(prompt, str):
            raise InvalidInput("multipart body needs a text field named 'prompt'")
        return VideoSource(data=await read_upload(video, limit, "video")), prompt

    @app.post(
        "/v1/critiques",
        tags=["critic"],
        summary="Judge one video: labels, scores, reasons and time-stamped issues.",
        openapi_extra=_CRITIQUE_BODY,
    )
    async def critiques(request: Request) -> dict[str, Any]:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("multipart/form-data"):
            source, prompt = await _multipart(request)
        elif ctype.startswith("application/json"):
            body = parse_json(VideoJSON, await read_json_body(request, limit, "video"))
            source, prompt = body.source(), body.prompt
        else:
            raise InvalidInput(
                "send multipart/form-data (fields 'video' and 'prompt') or application/json "
                "(prompt and video_uri or video_b64)"
            )
        c = await limiter.run(lambda d: engine.critique(source, prompt, d), Deadline())
        return to_json(c)

    @app.post(
        "/v1/scores",
        tags=["critic"],
        summary="Score a batch: labels, scores and rewards, no reasons; items fail separately.",
        openapi_extra=_SCORES_BODY,
    )
    async def scores(request: Request) -> dict[str, Any]:
        body = parse_json(ScoreJSON, await read_json_body(request, limit, "video"))
        items = []
        for i, item in enumerate(body.items):
            try:
                items.append((item.source(), item.prompt))
            except InvalidInput as exc:
                raise InvalidInput(f"items.{i}: {exc.message}") from None
        outcomes = await limiter.run(lambda d: engine.score(items, d), Deadline())
        results: list[dict[str, Any]] = []
        for o in outcomes:
            if o.critique is not None:
                results.append({"critique": to_json(o.critique)})
            else:
                assert o.error is not None
                results.append(error_body(o.error.code_name, o.error.message))
        return {"results": results}

    @app.get("/v1/info", tags=["critic"], summary="Backend, model, reward map and limits.")
    async def info() -> dict[str, Any]:
        i = engine.info()
        s = i.settings
        return {
            "model": {"backend": i.model.backend, "name": i.model.name, "version": i.model.version},
            "assessed_dimensions": [d.value for d in i.assessed],
            "reward_map": {
                "good": i.reward_map.good,
                "normal": i.reward_map.normal,
                "bad": i.reward_map.bad,
            },
            "limits": {
                "max_video_bytes": s.max_video_bytes,
                "max_duration_s": s.max_duration_s,
                "max_frames": s.max_frames,
                "max_side_px": s.max_side_px,
                "max_prompt_chars": s.max_prompt_chars,
                "max_batch_items": s.max_batch_items,
            },
            "suite_version": i.suite_version,
        }

    return app
