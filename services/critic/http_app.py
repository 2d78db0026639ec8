"""HTTP front of the critic (FastAPI): translate JSON/multipart, delegate to the engine."""

from __future__ import annotations

from fastapi import FastAPI, Request

from lift.errors import InvalidInput
from lift.http import (
    JSON,
    MULTIPART,
    ErrorDetail,
    ErrorResponse,
    body_kind,
    error_responses,
    parse_json,
    read_form_model,
    read_json_body,
    request_body,
    service_app,
)
from lift.services.critic.engine import CriticEngine, VideoSource
from lift.services.critic.http_models import (
    CompareForm,
    CompareJSON,
    ComparisonJSON,
    CriticInfoJSON,
    CritiqueForm,
    CritiqueJSON,
    ScoredJSON,
    ScoreJSON,
    ScoresJSON,
    VideoJSON,
)
from lift.serving import Deadline, WorkLimiter

# Most text a multipart form's prompt field may carry (the engine caps characters).
_MAX_TEXT_PART = 1024 * 1024


def create_app(engine: CriticEngine, limiter: WorkLimiter) -> FastAPI:
    """The critic's FastAPI app."""
    app = service_app(
        "critic",
        title="LiFT critic",
        description="Judges a generated video against its prompt: semantic consistency, "
        "motion smoothness and video fidelity, with labels, scores and reasons.",
        is_ready=lambda: engine.ready,
    )
    limit = engine.settings.max_video_bytes

    async def _source(request: Request) -> tuple[VideoSource, str]:
        kind = body_kind(
            request,
            (MULTIPART, JSON),
            "send multipart/form-data (fields 'video' and 'prompt') or application/json "
            "(prompt and video_uri or video_b64)",
        )
        if kind == MULTIPART:
            form = await read_form_model(request, CritiqueForm, {"video": limit}, _MAX_TEXT_PART)
            return VideoSource(data=form.video), form.prompt
        body = parse_json(VideoJSON, await read_json_body(request, limit, "video"))
        return body.source(), body.prompt

    @app.post(
        "/v1/critiques",
        tags=["critic"],
        summary="Judge one video: labels, scores, reasons and time-stamped issues.",
        openapi_extra=request_body(app, {MULTIPART: CritiqueForm, JSON: VideoJSON}),
        responses=error_responses(400, 404, 413, 415, 429, 503, 504),
    )
    async def critiques(request: Request) -> CritiqueJSON:
        source, prompt = await _source(request)
        deadline = Deadline()
        source = await engine.fetch(source, deadline)  # on the loop, before taking a worker
        c = await limiter.run(lambda d: engine.critique(source, prompt, d), deadline)
        return CritiqueJSON.of(c)

    @app.post(
        "/v1/scores",
        tags=["critic"],
        summary="Score a batch: labels, scores and rewards, no reasons; items fail separately.",
        openapi_extra=request_body(app, {JSON: ScoreJSON}),
        responses=error_responses(400, 413, 415, 429, 503, 504),
    )
    async def scores(request: Request) -> ScoresJSON:
        body_kind(request, (JSON,), "send application/json with a list of items")
        body = parse_json(ScoreJSON, await read_json_body(request, limit, "video"))
        items = []
        for i, item in enumerate(body.items):
            try:
                items.append((item.source(), item.prompt))
            except InvalidInput as exc:
                raise InvalidInput(f"items.{i}: {exc.message}") from None
        deadline = Deadline()
        fetched = await engine.fetch_all([s for s, _ in items], deadline)
        items = [(s, p) for s, (_, p) in zip(fetched, items, strict=True)]
        outcomes = await limiter.run(lambda d: engine.score(items, d), deadline)
        results: list[ScoredJSON | ErrorResponse] = []
        for o in outcomes:
            if o.critique is not None:
                results.append(ScoredJSON(critique=CritiqueJSON.of(o.critique)))
            else:
                assert o.error is not None
                err = ErrorDetail(code=o.error.code_name, message=o.error.message)
                results.append(ErrorResponse(error=err))
        return ScoresJSON(results=results)

    @app.post(
        "/v1/comparisons",
        tags=["critic"],
        summary="Which of two videos of one prompt is better: prob_a, prob_b, prob_tie per "
        "dimension and overall.",
        openapi_extra=request_body(app, {MULTIPART: CompareForm, JSON: CompareJSON}),
        responses=error_responses(400, 404, 413, 415, 429, 503, 504),
    )
    async def comparisons(request: Request) -> ComparisonJSON:
        kind = body_kind(
            request,
            (MULTIPART, JSON),
            "send multipart/form-data (fields 'video_a', 'video_b' and 'prompt') or "
            "application/json (prompt, and a and b each with video_uri or video_b64)",
        )
        if kind == MULTIPART:
            form = await read_form_model(
                request, CompareForm, {"video_a": limit, "video_b": limit}, _MAX_TEXT_PART
            )
            a, b, prompt = (
                VideoSource(data=form.video_a),
                VideoSource(data=form.video_b),
                form.prompt,
            )
        else:
            body = parse_json(CompareJSON, await read_json_body(request, 2 * limit, "video"))
            sources = []
            for name, ref in (("a", body.a), ("b", body.b)):
                try:
                    sources.append(ref.source())
                except InvalidInput as exc:
                    raise InvalidInput(f"{name}: {exc.message}") from None
            (a, b), prompt = sources, body.prompt
        deadline = Deadline()
        a, b = await engine.fetch_all([a, b], deadline)  # on the loop, before taking a worker
        c = await limiter.run(lambda d: engine.compare(prompt, a, b, d), deadline)
        return ComparisonJSON.of(c)

    @app.get(
        "/v1/info",
        tags=["critic"],
        summary="Backend, model, reward map and limits.",
        responses=error_responses(503),
    )
    async def info() -> CriticInfoJSON:
        return CriticInfoJSON.of(engine.info())

    return app
