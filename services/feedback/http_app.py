"""HTTP front of the feedback service (FastAPI): who is asking, translate JSON, delegate.

The annotator is the bearer token's name when the service has a tokens file; without
one (loopback only, see the settings) it is the ``X-Lift-Annotator`` header. The pages
(``/``, ``/overview``, ``/static/*``) are open: they hold no data and ask for the token
themselves.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from lift import __version__
from lift.auth import Authenticator, bearer_token
from lift.critique import ASSESSED_LABELS, DIMENSIONS
from lift.errors import InvalidInput, NotFound, PayloadTooLarge, Unauthenticated
from lift.http import (
    JSON,
    MULTIPART,
    body_kind,
    error_responses,
    parse_json,
    read_body,
    read_form_model,
    read_json_body,
    request_body,
    service_app,
)
from lift.http.security import secure_app
from lift.services.feedback.engine import FeedbackEngine
from lift.services.feedback.http_models import (
    FlagIn,
    InfoJSON,
    ItemCreatedJSON,
    ItemJSON,
    ItemUploadForm,
    ItemUploadJSON,
    MeJSON,
    NextJSON,
    OverviewJSON,
    RatedJSON,
    RatingIn,
    UndoJSON,
    UndoneJSON,
)

STATIC = Path(__file__).with_name("static")
ANNOTATOR_HEADER = "x-lift-annotator"
_ANNOTATOR = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_ASSET = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}$")
_ASSET_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
}
# The pages run only their own scripts and fetch only from this service; videos play from
# blob: URLs (fetched with the auth header); no framing (clickjacking a rating page).
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' "
    "'unsafe-inline'; media-src 'self' blob:; img-src 'self' data: blob:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
_RANGE_PART = re.compile(r"(\d*)-(\d*)")
_MAX_RANGES = 16


def check_range(header: str | None) -> None:
    """InvalidInput unless a Range header is ``bytes=`` and up to 16 well-formed ranges.

    Starlette answers a malformed one in plain text; this says in the error JSON what a
    player should send. A range past the end of the file is still a 416 from Starlette.
    """
    if header is None:
        return
    unit, _, spec = header.strip().partition("=")
    parts = [p.strip() for p in spec.split(",")]
    ok = unit.strip().lower() == "bytes" and 0 < len(parts) <= _MAX_RANGES
    for part in parts if ok else ():
        m = _RANGE_PART.fullmatch(part)
        if m is None or not (m[1] or m[2]) or (m[1] and m[2] and int(m[1]) > int(m[2])):
            ok = False
            break
    if not ok:
        raise InvalidInput(
            f"Range header {header[:80]!r} is not a byte range: send bytes=START-END, "
            f"bytes=START- or bytes=-SUFFIX (up to {_MAX_RANGES}, comma-separated), or no Range"
        )


PUBLIC_PATHS = ("/", "/overview")
PUBLIC_PREFIXES = ("/static/",)
_SMALL_BODY = 64 * 1024
_PLACEHOLDER = (
    "<!doctype html><meta charset=utf-8><title>LiFT feedback</title>"
    "<p>The annotation page is not installed in this build ({name} is missing). "
    "The API is at <a href=/docs>/docs</a>.</p>"
)


def create_app(engine: FeedbackEngine) -> FastAPI:
    """The feedback service's FastAPI app, secured (tokens, hosts, CORS) per its settings."""
    settings = engine.settings
    app = service_app(
        "feedback",
        title="LiFT feedback",
        description="People rate generated videos on semantic consistency, motion smoothness "
        "and video fidelity, with reasons; agreement between annotators; LiFT-HRA export.",
        is_ready=lambda: engine.ready,
    )
    auth_holder: list[Authenticator | None] = [None]

    def annotator(request: Request) -> str:
        auth = auth_holder[0]
        if auth is not None:
            # The middleware already checked the token and its scope; this names its holder.
            caller = auth.authenticate(bearer_token(request.headers.get("authorization")))
            if caller is None:
                raise Unauthenticated("the bearer token is not valid; sign in again")
            return caller.name
        name = request.headers.get(ANNOTATOR_HEADER)
        if name is None:
            raise InvalidInput(
                "say who you are: send the X-Lift-Annotator header (1-64 letters, digits, "
                "'_', '.', '-'); the service has no tokens file, so it cannot tell otherwise"
            )
        if not _ANNOTATOR.fullmatch(name):
            raise InvalidInput(
                "X-Lift-Annotator must be 1-64 characters of letters, digits, '_', '.', '-'"
            )
        return name

    def page(name: str) -> Response:
        path = STATIC / name
        if not path.is_file():
            return HTMLResponse(_PLACEHOLDER.format(name=name), headers=PAGE_HEADERS)
        return FileResponse(path, media_type=_ASSET_TYPES[".html"], headers=PAGE_HEADERS)

    @app.get("/", include_in_schema=False)
    def index() -> Response:
        return page("index.html")

    @app.get("/overview", include_in_schema=False)
    def overview_page() -> Response:
        return page("overview.html")

    @app.get("/static/{name}", include_in_schema=False)
    def asset(name: str) -> Response:
        path = STATIC / name
        kind = _ASSET_TYPES.get(Path(name).suffix.lower())
        if not _ASSET.fullmatch(name) or kind is None or not path.is_file():
            raise NotFound(f"no page asset {name[:100]!r}")
        return FileResponse(path, media_type=kind, headers=PAGE_HEADERS)

    @app.get("/v1/info", tags=["feedback"], summary="Service, auth mode, overlap, queue size.")
    def info() -> InfoJSON:
        return InfoJSON(
            version=__version__,
            auth=auth_holder[0] is not None,
            overlap=engine.overlap,
            items=len(engine.store.items()),
            dimensions=[d.value for d in DIMENSIONS],
            labels=[lab.value for lab in ASSESSED_LABELS],
        )

    @app.get(
        "/v1/me",
        tags=["feedback"],
        summary="The caller's progress.",
        responses=error_responses(400),
    )
    def me(request: Request) -> MeJSON:
        return MeJSON(**MeJSON.fields(engine.me(annotator(request))))

    @app.get(
        "/v1/next",
        tags=["feedback"],
        summary="The next item for the caller (item null when nothing is left).",
        responses=error_responses(400),
    )
    def next_item(request: Request) -> NextJSON:
        item, me = engine.next(annotator(request))
        return NextJSON(
            item=ItemJSON.of(item) if item is not None else None,
            **MeJSON.fields(me),
        )

    @app.get(
        "/v1/items/{item_id}/video",
        tags=["feedback"],
        summary="The item's video bytes (Range requests supported).",
        responses=error_responses(400, 404),
    )
    def video(item_id: str, request: Request) -> Response:
        annotator(request)
        check_range(request.headers.get("range"))
        item = engine.item(item_id)
        path = engine.video_file(item)
        if path is None:
            raise NotFound(
                f"the video of item {item_id} is gone or changed on the server since it was "
                "queued; skip this item"
            )
        return FileResponse(
            path,
            media_type=item.media_type,
            headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )

    @app.post(
        "/v1/ratings",
        status_code=201,
        tags=["feedback"],
        summary="Rate an item on all three dimensions (a reason for every label but good).",
        openapi_extra=request_body(app, {JSON: RatingIn}),
        responses=error_responses(400, 404, 409, 413, 415),
    )
    async def ratings(request: Request) -> RatedJSON:
        who = annotator(request)
        body_kind(request, (JSON,), "send application/json")
        body = parse_json(RatingIn, await read_body(request, _SMALL_BODY, "rating"))
        rating_id, me = await asyncio.to_thread(
            engine.rate, who, body.item_id, body.labels, body.reasons
        )
        return RatedJSON(rating_id=str(rating_id), **MeJSON.fields(me))

    @app.post(
        "/v1/items/{item_id}:skip",
        tags=["feedback"],
        summary="Skip an item (it is not offered to the caller again unless undone).",
        responses=error_responses(400, 404),
    )
    def skip(item_id: str, request: Request) -> MeJSON:
        return MeJSON(**MeJSON.fields(engine.skip(annotator(request), item_id)))

    @app.post(
        "/v1/items/{item_id}:flag",
        tags=["feedback"],
        summary="Flag an item for the operator (with an optional note); it is skipped too.",
        openapi_extra=request_body(app, {JSON: FlagIn}),
        responses=error_responses(400, 404, 413, 415),
    )
    async def flag(item_id: str, request: Request) -> MeJSON:
        who = annotator(request)
        raw = await read_body(request, _SMALL_BODY, "flag")
        note = ""
        if raw.strip():
            body_kind(request, (JSON,), "send application/json")
            note = parse_json(FlagIn, raw).note
        me = await asyncio.to_thread(engine.flag, who, item_id, note)
        return MeJSON(**MeJSON.fields(me))

    @app.post(
        "/v1/undo",
        tags=["feedback"],
        summary="Take back the caller's most recent rating, skip or flag.",
        responses=error_responses(400),
    )
    def undo(request: Request) -> UndoJSON:
        undone, me = engine.undo(annotator(request))
        return UndoJSON(
            undone=UndoneJSON(kind=undone[0], item_id=undone[1]) if undone else None,
            **MeJSON.fields(me),
        )

    @app.get(
        "/v1/overview",
        tags=["feedback"],
        summary="Coverage, throughput, agreement (Fleiss' and Cohen's κ) and flags (admin).",
    )
    def overview() -> OverviewJSON:
        return OverviewJSON.of(engine.overview())

    limit = settings.max_video_bytes

    @app.post(
        "/v1/items",
        status_code=201,
        tags=["feedback"],
        summary="Queue an uploaded video with its prompt (admin; `lift feedback sample`).",
        openapi_extra=request_body(app, {MULTIPART: ItemUploadForm, JSON: ItemUploadJSON}),
        responses=error_responses(400, 413, 415),
    )
    async def upload(request: Request) -> JSONResponse:
        kind = body_kind(
            request,
            (MULTIPART, JSON),
            "send multipart/form-data (fields 'video' and 'prompt') or application/json "
            "(video_b64 and prompt)",
        )
        if kind == MULTIPART:
            form = await read_form_model(request, ItemUploadForm, {"video": limit}, _SMALL_BODY)
            data, prompt = form.video, form.prompt
        else:
            body = parse_json(ItemUploadJSON, await read_json_body(request, limit, "video"))
            try:
                data = base64.b64decode(body.video_b64, validate=True)
            except (binascii.Error, ValueError):
                raise InvalidInput("video_b64 is not valid base64") from None
            if len(data) > limit:
                raise PayloadTooLarge(
                    f"the video is {len(data)} bytes; the limit is {limit} (max_video_bytes)"
                )
            prompt = body.prompt
        item_id, created = await asyncio.to_thread(engine.upload, data, prompt)
        reply = ItemCreatedJSON(item_id=item_id, created=created)
        return JSONResponse(reply.model_dump(), status_code=201 if created else 200)

    auth_holder[0] = secure_app(
        app, "feedback", settings, public_paths=PUBLIC_PATHS, public_prefixes=PUBLIC_PREFIXES
    )
    return app
