"""Reading request bodies: JSON or multipart, size-capped, validated by a pydantic model.

Routes that take JSON *or* a multipart form read the body here rather than through
FastAPI's parameters (FastAPI binds one content type per body); the same models then
declare both forms in the OpenAPI document (:func:`lift.http.docs.request_body`).
"""

from __future__ import annotations

import contextlib
import types
from typing import Any, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from lift.errors import InvalidInput, LiftError, PayloadTooLarge, UnsupportedMediaType
from lift.http.limits import tighten_body_limit

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


async def read_body(request: Request, limit: int, what: str) -> bytes:
    """The raw body, counted while it streams in and refused (413) past ``limit`` bytes.

    Chunked bodies have no Content-Length to check up front: the count is what holds,
    so at most ``limit`` bytes plus one chunk are ever held.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the request body is {declared} bytes; the {what} limit is {limit}")
    tighten_body_limit(request.scope, limit)
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise PayloadTooLarge(f"the request body is larger than the {what} limit of {limit}")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json_body(request: Request, payload_limit: int, what: str) -> bytes:
    """The raw body of a JSON request that carries up to ``payload_limit`` bytes in base64.

    The body may be as large as the payload could need (base64 is 4/3 of the bytes,
    plus room for the rest of the JSON); past that it is refused while it streams.
    """
    return await read_body(request, payload_limit * 4 // 3 + 1024 * 1024, f"{what} request")


class _Utf8MultiPartParser(MultiPartParser):
    """Starlette's multipart parser, except a text part that does not decode is refused.

    Starlette reads a text part that is not valid in the form's charset (UTF-8
    unless the Content-Type says otherwise) as Latin-1, silently; a prompt would
    then be judged as mojibake. Here it is a 400 naming the field.
    """

    def on_part_end(self) -> None:
        part = self._current_part
        if part.file is None:
            try:
                bytes(part.data).decode(self._charset or "utf-8")
            except (UnicodeDecodeError, LookupError):
                raise MultiPartException(
                    f"the field {part.field_name!r} is not valid "
                    f"{(self._charset or 'utf-8').upper()} text: send text fields as UTF-8"
                ) from None
        super().on_part_end()


async def _utf8_form(
    request: Request, max_files: int, max_fields: int, max_part_size: int
) -> FormData:
    """``request.form()``, with text parts decoded strictly (:class:`_Utf8MultiPartParser`)."""
    if media_type(request) != MULTIPART:
        return await request.form(
            max_files=max_files, max_fields=max_fields, max_part_size=max_part_size
        )
    async with contextlib.aclosing(request.stream()) as stream:
        parser = _Utf8MultiPartParser(
            request.headers,
            stream,
            max_files=max_files,
            max_fields=max_fields,
            max_part_size=max_part_size,
        )
        form = await parser.parse()
    request._form = form  # closed with the request, as request.form() does
    return form


async def read_form(
    request: Request, max_files: int, max_part_size: int, max_bytes: int | None = None
) -> FormData:
    """A multipart form of at most ``max_bytes`` in all; a broken one becomes InvalidInput."""
    if max_bytes is not None:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise PayloadTooLarge(
                f"the request body is {declared} bytes; the limit here is {max_bytes}"
            )
        tighten_body_limit(request.scope, max_bytes)
    try:
        return await _utf8_form(request, max_files, 4, max_part_size)
    except LiftError:  # a body limit or deadline (lift.http.limits) keeps its own status
        raise
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
    # The whole form may hold every file at its limit, the text parts and the framing.
    total = sum(file_limits.get(name, 0) for name in files) + max_text_bytes * 4 + 1024 * 1024
    form = await read_form(
        request, max_files=len(files), max_part_size=max_text_bytes, max_bytes=total
    )
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
