"""Reading request bodies: JSON or multipart, size-capped, validated by a pydantic model.

Routes that take JSON *or* a multipart form read the body here rather than through
FastAPI's parameters (FastAPI binds one content type per body); the same models then
declare both forms in the OpenAPI document (:func:`lift.http.docs.request_body`).
"""

from __future__ import annotations

import types
from typing import Any, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request

from lift.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType

M = TypeVar("M", bound=BaseModel)

JSON = "application/json"
MULTIPART = "multipart/form-data"


def media_type(request: Request) -> str:
    """The request's media type without parameters, lower case ("" when absent)."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def body_kind(request: Request, accepted: tuple[str, ...], hint: str) -> str:
    """Which of ``accepted`` media types the body is; UnsupportedMediaType otherwise.

    A missing Content-Type counts as the first accepted type, so a bare ``curl -d`` to
    a JSON endpoint keeps working; ``hint`` tells the caller what to send.
    """
    kind = media_type(request)
    if not kind:
        return accepted[0]
    for wanted in accepted:
        if kind == wanted or (wanted == JSON and kind.endswith("+json")):
            return wanted
    raise UnsupportedMediaType(f"Content-Type {kind} is not accepted here: {hint}")


def _message(exc: ValidationError, what: str) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    return f"invalid {what}: " + "; ".join(parts)


def parse_json(model: type[M], raw: bytes) -> M:
    """Validate a JSON body; a bad one becomes InvalidInput naming the field."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise InvalidInput(_message(exc, "JSON body")) from None


async def read_json_body(request: Request, payload_limit: int, what: str) -> bytes:
    """The raw body of a JSON request that carries up to ``payload_limit`` bytes in base64.

    A body announced larger than the payload could need (base64 is 4/3 of the bytes,
    plus room for the rest of the JSON) is refused before it is read.
    """
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > payload_limit * 4 // 3 + 1024 * 1024:
        raise PayloadTooLarge(
            f"the request body is {declared} bytes; the {what} limit is {payload_limit}"
        )
    return await request.body()


async def read_form(request: Request, max_files: int, max_part_size: int) -> FormData:
    """A multipart form; a broken one becomes InvalidInput."""
    try:
        return await request.form(max_files=max_files, max_fields=4, max_part_size=max_part_size)
    except Exception as exc:  # starlette raises several types for broken multipart
        # HTTPException's str() starts with its status ("400: ..."); the detail is the sentence
        detail = getattr(exc, "detail", None) or str(exc)
        raise InvalidInput(f"could not parse the multipart body: {detail}") from None


async def read_upload(upload: UploadFile, limit: int, what: str) -> bytes:
    """An uploaded file's bytes, refused past ``limit`` without reading further."""
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"the {what} is larger than the {limit}-byte limit")
    return data


def _is_file(field: FieldInfo) -> bool:
    """True for ``bytes`` and ``bytes | None`` fields: the form's file parts."""
    ann = field.annotation
    if get_origin(ann) in (Union, types.UnionType):
        return bytes in get_args(ann)
    return ann is bytes


async def read_form_model(
    request: Request, model: type[M], file_limits: dict[str, int], max_text_bytes: int
) -> M:
    """A multipart form read into ``model``: its ``bytes`` fields are the file parts.

    Each file part is read up to its limit in ``file_limits`` (PayloadTooLarge past
    it); text parts are capped at ``max_text_bytes``. A text value sent for a file
    field is taken as that file's content (``curl -F config='{...}'``).
    """
    files = [name for name, f in model.model_fields.items() if _is_file(f)]
    form = await read_form(request, max_files=len(files), max_part_size=max_text_bytes)
    values: dict[str, Any] = {}
    for name in model.model_fields:
        value = form.get(name)
        if isinstance(value, UploadFile):
            if name not in files:
                raise InvalidInput(f"multipart field {name!r} must be text, not a file")
            values[name] = await read_upload(value, file_limits[name], name)
        elif value is not None:
            values[name] = value
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise InvalidInput(_message(exc, "multipart body")) from None
