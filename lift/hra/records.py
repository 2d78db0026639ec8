"""LiFT-HRA-style human ratings: read, validate with line-precise errors.

A file is a JSON array or JSON lines of records, one per (video, dimension)::

    {"video": "clips/0001.mp4",
     "conversations": [
        {"from": "human", "value": "<video>\\n<caption> <question>"},
        {"from": "gpt", "value": "Good. <reason>"}]}

Optional fields: ``id``; ``dimension`` (semantic_consistency, motion_smoothness,
video_fidelity) and ``prompt`` (the caption), which otherwise are read from the
human turn with the critic's instruction templates (``--templates`` when the
data was written with other wording). When the templates do not match, the
dimension falls back to keywords in the question, and the caption must then be
given as ``prompt``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lift.critique import Dimension, Label
from lift.templates import VIDEO_MARKER, Templates
from lift.uris import is_uri

_KEYWORDS = {
    Dimension.SEMANTIC_CONSISTENCY: ("semantic", "consisten", "alignment", "match the prompt"),
    Dimension.MOTION_SMOOTHNESS: ("motion", "smooth", "movement"),
    Dimension.VIDEO_FIDELITY: ("fidelity", "visual quality", "distortion", "artifact"),
}


@dataclass(frozen=True)
class HraRecord:
    """One human rating of one video on one dimension."""

    line: int
    id: str
    video: str
    """As written in the file (a path relative to the file, or a URI)."""
    prompt: str
    dimension: Dimension
    label: Label
    reason: str


@dataclass(frozen=True)
class HraError:
    """What is wrong with the record starting at ``line``."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


def _objects(text: str) -> tuple[list[tuple[int, Any]], list[HraError]]:
    """(line, value) of every record, for a JSON array or JSON lines, and syntax errors.

    A syntax error ends a JSON array (nothing after it can be trusted); in JSON
    lines it costs only its own line.
    """
    stripped = text.lstrip()
    if not stripped:
        return [], [HraError(1, "the file is empty")]
    decoder = json.JSONDecoder()
    out: list[tuple[int, Any]] = []
    if stripped.startswith("["):
        pos = text.index("[") + 1
        while True:
            while pos < len(text) and text[pos] in " \t\r\n":
                pos += 1
            if pos < len(text) and text[pos] == "]":
                return out, []
            line = text.count("\n", 0, pos) + 1
            try:
                value, pos = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as exc:
                return out, [HraError(exc.lineno, f"invalid JSON: {exc.msg} (column {exc.colno})")]
            out.append((line, value))
            while pos < len(text) and text[pos] in " \t\r\n":
                pos += 1
            if pos < len(text) and text[pos] == ",":
                pos += 1
            elif pos < len(text) and text[pos] == "]":
                return out, []
            else:
                line = text.count("\n", 0, pos) + 1
                return out, [HraError(line, "expected ',' or ']' after a record")]
    errors = []
    for i, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            out.append((i, json.loads(raw)))
        except json.JSONDecodeError as exc:
            errors.append(HraError(i, f"invalid JSON: {exc.msg} (column {exc.colno})"))
    return out, errors


def _dimension_by_keywords(question: str) -> Dimension | None:
    q = question.lower()
    hits = [d for d, words in _KEYWORDS.items() if any(w in q for w in words)]
    return hits[0] if len(hits) == 1 else None


def _record(line: int, obj: Any, templates: Templates) -> HraRecord | HraError:
    def err(msg: str) -> HraError:
        return HraError(line, msg)

    if not isinstance(obj, dict):
        return err(f"a record must be a JSON object, got {type(obj).__name__}")
    video = obj.get("video")
    if not isinstance(video, str) or not video.strip():
        return err('"video" must be a non-empty string (a path relative to the file, or a URI)')
    turns = obj.get("conversations")
    if not isinstance(turns, list) or len(turns) < 2:
        return err('"conversations" must be a list with a human turn and a gpt turn')
    for k, t in enumerate(turns[:2]):
        if not isinstance(t, dict) or not isinstance(t.get("value"), str):
            return err(f'conversations[{k}] must be an object with a string "value"')
    human, gpt = turns[0], turns[1]
    if human.get("from") != "human" or gpt.get("from") != "gpt":
        return err('the first turn must be "from": "human" and the second "from": "gpt"')
    if VIDEO_MARKER not in human["value"]:
        return err(f"the human turn has no {VIDEO_MARKER} marker")
    try:
        label, reason = templates.parse_answer(gpt["value"])
    except ValueError as exc:
        return err(f"the gpt answer does not parse: {exc}")
    parsed = templates.parse_question(human["value"])
    dimension: Dimension | None = parsed[0] if parsed else None
    prompt: str | None = parsed[1] if parsed else None
    if "dimension" in obj:
        # our names, or the checkpoint's answer keys ("motion issues" with --templates lift-13b)
        named = obj["dimension"]
        dimension = templates.dimension_for_key(named) if isinstance(named, str) else None
        if dimension is None:
            names = ", ".join(d.value for d in Dimension)
            keys = ", ".join((templates.answer_keys or {}).values())
            also = f" (or one of the template's answer keys: {keys})" if keys else ""
            return err(f'"dimension" must be one of {names}{also}, got {named!r}')
    if dimension is None:
        dimension = _dimension_by_keywords(human["value"].replace(VIDEO_MARKER, ""))
    if dimension is None:
        return err(
            'cannot tell which dimension the question asks about: add "dimension", or pass '
            "--templates with the wording this data was written with"
        )
    if "prompt" in obj:
        if not isinstance(obj["prompt"], str) or not obj["prompt"].strip():
            return err('"prompt" must be a non-empty string')
        prompt = obj["prompt"].strip()
    if not prompt:
        return err(
            'cannot find the caption in the human turn: add "prompt", or pass --templates '
            "with the wording this data was written with"
        )
    rid = obj.get("id", f"line{line}")
    return HraRecord(line, str(rid), video.strip(), prompt, dimension, label, reason)


def read_hra(
    path: Path, templates: Templates, check_videos: bool = True
) -> tuple[list[HraRecord], list[HraError]]:
    """Every valid record and every error (with its line) in an HRA file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [], [HraError(1, f"cannot read {path}: {exc}")]
    objects, errors = _objects(text)
    records: list[HraRecord] = []
    seen: dict[tuple[str, Dimension], int] = {}
    for line, obj in objects:
        r = _record(line, obj, templates)
        if isinstance(r, HraError):
            errors.append(r)
            continue
        key = (r.video, r.dimension)
        if key in seen:
            errors.append(
                HraError(
                    line,
                    f"{r.video} is rated on {r.dimension.value} twice (first on line {seen[key]})",
                )
            )
            continue
        where = resolve_video(path, r.video)
        if check_videos and not is_uri(where) and not Path(where).is_file():
            errors.append(HraError(line, f"video file not found: {where}"))
            continue
        seen[key] = line
        records.append(r)
    if not records and not errors:
        errors.append(HraError(1, "the file holds no records"))
    return records, sorted(errors, key=lambda e: e.line)


def resolve_video(hra_file: Path, video: str) -> str:
    """A record's video: a URI as written, else a path relative to the HRA file's directory."""
    if is_uri(video):
        return video
    p = Path(video)
    return str(p if p.is_absolute() else hra_file.parent / p)
