"""The OpenAPI document and the pages that render it, served without any CDN.

Two things FastAPI does not do by itself:

- Bodies that come as JSON *or* multipart are read by hand (see :mod:`lift.http.bodies`),
  so FastAPI never sees their models. :func:`request_body` declares them in the
  operation and puts their schemas, nested models included, in
  ``components/schemas`` where every ``$ref`` resolves (a model's own
  ``model_json_schema()`` pasted inline would point at ``#/$defs/...``, which does
  not exist in an OpenAPI document).
- Swagger UI and ReDoc load their JavaScript from a CDN by default, so ``/docs`` is a
  blank page on a machine without internet. The bundles come from the
  ``fastapi-offline`` package (MIT; it ships swagger-ui-dist's bundle, Apache-2.0, and
  redoc's standalone build, MIT) and the service serves them under :data:`ASSETS_URL`.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Mapping
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.routing import BaseRoute

ASSETS_URL = "/static/docs"
"""Where the Swagger UI and ReDoc bundles are served."""

_MODELS = "lift_openapi_models"
_PLACEHOLDER = "lift-openapi-model:"
_SCRATCH = "/__lift_openapi_model__/"

# FastAPI adds a 422 response (and these two schemas) to every route with parameters;
# our handler answers 400 with the one error model instead (lift.http.errors).
_FASTAPI_422_SCHEMAS = ("HTTPValidationError", "ValidationError")

Mode = Literal["validation", "serialization"]

# FastAPI serialises the document without None values, nested ones included, which
# turns an example's `"score": null` into a missing required field. The examples
# travel as a JSON string beside the schema too, and are restored from it.
_EXAMPLES_KEY = "x-lift-examples"


def schema_examples(*examples: Any) -> dict[str, Any]:
    """A model's ``json_schema_extra``: ``examples`` shown as written, nulls included."""
    return {"examples": list(examples), _EXAMPLES_KEY: json.dumps(list(examples))}


def _models(app: FastAPI) -> list[tuple[type[BaseModel], Mode]]:
    """The models declared by hand on ``app``: each one's index is its placeholder."""
    if not hasattr(app.state, _MODELS):
        setattr(app.state, _MODELS, [])
    models: list[tuple[type[BaseModel], Mode]] = getattr(app.state, _MODELS)
    return models


def _ref(app: FastAPI, model: type[BaseModel], mode: Mode) -> str:
    """A placeholder for ``model``'s ``$ref``, replaced when the document is built."""
    models = _models(app)
    if (model, mode) not in models:
        models.append((model, mode))
    return f"{_PLACEHOLDER}{models.index((model, mode))}"


def request_body(
    app: FastAPI,
    content: Mapping[str, type[BaseModel] | dict[str, Any]],
    description: str = "",
    examples: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``openapi_extra`` declaring a body of one of several media types.

    ``content`` maps a media type to the pydantic model of its body (its schema goes
    to ``components/schemas``) or to a literal schema (e.g. ``{"type": "string"}``).
    Examples come from the models' own ``examples``, or per media type from ``examples``.
    """
    media: dict[str, Any] = {}
    for media_type, spec in content.items():
        schema = spec if isinstance(spec, dict) else {"$ref": _ref(app, spec, "validation")}
        media[media_type] = {"schema": schema}
        if examples and media_type in examples:
            media[media_type]["example"] = examples[media_type]
    body: dict[str, Any] = {"required": True, "content": media}
    if description:
        body["description"] = description
    return {"requestBody": body}


def register_schema(app: FastAPI, model: type[BaseModel]) -> str:
    """Put ``model`` (as a response part) in ``components/schemas``; its ``$ref``.

    For a model only prose or an extension refers to; the returned string may be used
    inside descriptions too.
    """
    return _ref(app, model, "serialization")


def _scratch_routes(models: list[tuple[type[BaseModel], Mode]]) -> list[BaseRoute]:
    """One throw-away route per declared model, so FastAPI itself writes their schemas.

    Its naming (``Model-Input``/``Model-Output`` when the two modes differ) and its
    schema generator then apply to them exactly as to the models FastAPI sees.
    """
    router = APIRouter()
    for i, (model, mode) in enumerate(models):

        async def endpoint(**_: Any) -> None:
            return None

        if mode == "validation":
            params = [inspect.Parameter("body", inspect.Parameter.KEYWORD_ONLY, annotation=model)]
            endpoint.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
            router.add_api_route(f"{_SCRATCH}{i}", endpoint, methods=["POST"])
        else:
            endpoint.__signature__ = inspect.Signature([])  # type: ignore[attr-defined]
            router.add_api_route(f"{_SCRATCH}{i}", endpoint, methods=["GET"], response_model=model)
    return router.routes


def _scratch_ref(doc: dict[str, Any], i: int, mode: Mode) -> str:
    operation = doc["paths"][f"{_SCRATCH}{i}"]
    if mode == "validation":
        schema = operation["post"]["requestBody"]["content"]["application/json"]["schema"]
    else:
        schema = operation["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    ref: str = schema["$ref"]
    return ref


def _replace(node: Any, refs: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {k: _replace(v, refs) for k, v in node.items()}
    if isinstance(node, list):
        return [_replace(v, refs) for v in node]
    if isinstance(node, str) and _PLACEHOLDER in node:
        return re.sub(rf"{_PLACEHOLDER}(\d+)", lambda m: refs[m.group(1)], node)
    return node


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node)) if node else set()
    return set()


def _stream_item_schema(media: dict[str, Any]) -> None:
    """Make a streamed body (FastAPI writes OpenAPI 3.2's ``itemSchema``) valid 3.1.

    The document is 3.1, which the bundled Swagger UI renders and which has no
    ``itemSchema``: the stream is a string there, and the schema of each item stays
    in the ``x-itemSchema`` extension (same meaning, readable by tools that know 3.2).
    """
    if "itemSchema" in media:
        media["x-itemSchema"] = media.pop("itemSchema")
        media.setdefault("schema", {"type": "string"})


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The document of ``app``: FastAPI's, plus the hand-declared bodies, minus 422s."""
    models = _models(app)
    doc = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        summary=app.summary,
        description=app.description,
        routes=[*app.routes, *_scratch_routes(models)],
        tags=app.openapi_tags,
        servers=app.servers,
        separate_input_output_schemas=app.separate_input_output_schemas,
    )
    refs = {str(i): _scratch_ref(doc, i, mode) for i, (_, mode) in enumerate(models)}
    for i in range(len(models)):
        del doc["paths"][f"{_SCRATCH}{i}"]
    doc = _replace(doc, refs)
    for path in doc.get("paths", {}).values():
        for operation in path.values():
            responses = operation.get("responses", {})
            responses.pop("422", None)
            for response in responses.values():
                for media in response.get("content", {}).values():
                    _stream_item_schema(media)
    schemas: dict[str, Any] = doc.get("components", {}).get("schemas", {})
    for schema in schemas.values():
        if _EXAMPLES_KEY in schema:
            schema["examples"] = json.loads(schema.pop(_EXAMPLES_KEY))
    # The schemas of the dropped 422 responses go too, unless something else uses them.
    others = {k: v for k, v in schemas.items() if k not in _FASTAPI_422_SCHEMAS}
    used = _refs(doc.get("paths", {})) | _refs(others)
    for name in _FASTAPI_422_SCHEMAS:
        if name in schemas and f"#/components/schemas/{name}" not in used:
            del schemas[name]
    return doc


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` return :func:`build_openapi`'s document (built once)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) from local assets.

    Build ``app`` with ``docs_url=None, redoc_url=None`` so FastAPI's CDN pages are off.
    """
    app.mount(
        ASSETS_URL,
        StaticFiles(packages=[("fastapi_offline", "static")]),
        name="docs-assets",
    )

    def urls(request: Request) -> tuple[str, str]:
        root = request.scope.get("root_path", "")
        return f"{root}{app.openapi_url}", f"{root}{ASSETS_URL}"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        spec, assets = urls(request)
        return get_swagger_ui_html(
            openapi_url=spec,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon.png",
            # No validator badge: it would send the document's URL to a public service.
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        spec, assets = urls(request)
        return get_redoc_html(
            openapi_url=spec,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{assets}/redoc.standalone.js",
            redoc_favicon_url=f"{assets}/favicon.png",
            with_google_fonts=False,
        )
