"""Filling the queue: videos with prompts from a directory or a JSONL file, and uploads.

``--videos DIR``: every video file in DIR (mp4, webm, mov, mkv, avi), its prompt from a
``prompts.jsonl`` or ``items.jsonl`` there (records ``{"video": "a.mp4", "prompt": ...}``,
or ``{"id": "a", "prompt": ...}`` naming the video's stem, as `lift prompts make` writes
ids) or from a ``<stem>.txt`` beside it. Videos a record names in a sub-folder of DIR
come along too. ``--videos FILE.jsonl``: records ``{"video": path relative to the
file, "prompt": ...}``.

An item's id is a prefix of the SHA-256 of its video bytes and its prompt, so importing
the same source again adds nothing. A path that leaves the directory (``../``, an
absolute path elsewhere, a symlink pointing out) refuses the whole import: the operator
named what the service may read, and nothing else is read. A video without a prompt, a
file that does not decode, one over the size limit, anything but a regular file (a FIFO
or device named ``x.mp4`` is never opened for a blocking read) and a prompt the export
could not carry (a NUL, the ``<video>`` marker) are reported and skipped.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lift.errors import InvalidInput
from lift.services.feedback.store import Store
from lift.templates import VIDEO_MARKER
from lift.uris import read_regular_file

VIDEO_TYPES = {
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".mov": "video/quicktime",
    ".mkv": "video/x-matroska",
    ".avi": "video/x-msvideo",
}
PROMPT_FILES = ("prompts.jsonl", "items.jsonl")
_MAX_SIDECAR_BYTES = 1024 * 1024
UPLOADS = "uploads"


class ImportRefused(ValueError):
    """The source asks for a file outside what the operator allowed; nothing was imported."""


@dataclass
class ImportReport:
    """What one import did."""

    source: Path
    added: int = 0
    present: int = 0
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the log."""
        text = f"{self.source}: {self.added} new items, {self.present} already queued"
        if self.skipped:
            text += f", {len(self.skipped)} skipped"
        return text


@dataclass(frozen=True)
class Probe:
    """What a video file holds, read from its container."""

    media_type: str
    fps: float | None
    frames: int | None


def probe(data: bytes, where: str) -> Probe:
    """Open the container, find a video stream; InvalidInput when there is none."""
    import av

    try:
        with av.open(io.BytesIO(data)) as container:
            if not container.streams.video:
                raise InvalidInput(f"{where} has no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.base_rate
            fps = float(rate) if rate else None
            frames = int(stream.frames) or None
            names = set(container.format.name.split(","))
            codec = stream.codec_context.name
    except InvalidInput:
        raise
    except Exception as exc:  # PyAV raises many kinds for a broken file
        why = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise InvalidInput(
            f"{where} is not a video the service can read ({why}); send an mp4, webm, mov, "
            "mkv or avi file"
        ) from None
    if "mp4" in names or "mov" in names:
        media = "video/mp4"
    elif "webm" in names and codec in {"vp8", "vp9", "av1"}:
        media = "video/webm"
    elif "matroska" in names:
        media = "video/x-matroska"
    elif "avi" in names:
        media = "video/x-msvideo"
    else:
        raise InvalidInput(
            f"{where} is a {container.format.name} file; send mp4, webm, mov, mkv or avi"
        )
    return Probe(media, fps if fps and fps > 0 else None, frames)


def check_prompt(prompt: str, max_prompt: int) -> str:
    """The prompt trimmed; InvalidInput when it is empty, too long or holds a NUL."""
    prompt = prompt.strip()
    if not prompt:
        raise InvalidInput("prompt is empty: send the text the video was generated from")
    if len(prompt) > max_prompt:
        raise InvalidInput(f"prompt is {len(prompt)} characters; the limit is {max_prompt}")
    if "\x00" in prompt:
        raise InvalidInput("prompt holds a NUL character (U+0000); remove it")
    if VIDEO_MARKER in prompt:
        # the exported question would carry two markers: the critic's input has one video
        raise InvalidInput(
            f"prompt holds {VIDEO_MARKER}, the marker where the critic's input puts the "
            "video; reword it"
        )
    return prompt


def item_id_of(video_sha256: str, prompt: str) -> str:
    """The item id: 16 hex digits of SHA-256 over the video's hash and the prompt."""
    return hashlib.sha256(f"{video_sha256}\n{prompt}".encode()).hexdigest()[:16]


def _inside(root: Path, candidate: Path, what: str) -> Path:
    """``candidate`` resolved (symlinks followed); ImportRefused when it leaves ``root``."""
    try:
        resolved = candidate.resolve()
    except (ValueError, OSError, RuntimeError) as exc:  # a NUL in the name, a symlink loop
        raise ImportRefused(f"{what} is not a usable path ({exc}); fix the name") from None
    if not resolved.is_relative_to(root):
        raise ImportRefused(
            f"{what} leads outside {root} (to {resolved}); put the videos inside the "
            "directory you import (symlinks that point out of it are refused too)"
        )
    return resolved


_MAX_LISTING_BYTES = 64 * 1024 * 1024


def _records(path: Path, report: ImportReport) -> list[tuple[int, dict[str, Any]]]:
    out = []
    try:
        text = read_regular_file(path, _MAX_LISTING_BYTES).decode("utf-8")
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ImportRefused(f"cannot read {path}: {exc}") from None
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            report.skipped.append(f"{path}:{n}: invalid JSON ({exc.msg}); line skipped")
            continue
        if not isinstance(obj, dict):
            report.skipped.append(f"{path}:{n}: a record must be a JSON object; line skipped")
            continue
        out.append((n, obj))
    return out


def _prompt_of(obj: dict[str, Any]) -> str | None:
    p = obj.get("prompt")
    return p.strip() if isinstance(p, str) and p.strip() else None


def collect(source: Path) -> tuple[list[tuple[Path, str | None, str]], ImportReport]:
    """(video file, prompt or None, where it was named) of a source; ImportRefused on escape."""
    report = ImportReport(source)
    if not source.exists():
        raise ImportRefused(f"--videos {source} does not exist")
    if source.is_dir():
        root = source.resolve()
        named: list[tuple[Path, str | None, str]] = []  # a video may have several prompts
        by_stem: dict[str, str] = {}
        for name in PROMPT_FILES:
            listing = source / name
            if not listing.is_file():
                continue
            _inside(root, listing, str(listing))
            for n, obj in _records(listing, report):
                where = f"{listing}:{n}"
                prompt = _prompt_of(obj)
                video = obj.get("video")
                if isinstance(video, str) and video.strip():
                    path = _inside(root, root / video.strip(), f'{where}: "video" {video!r}')
                    named.append((path, prompt, where))
                elif isinstance(obj.get("id"), str) and prompt:
                    by_stem[obj["id"]] = prompt
                else:
                    report.skipped.append(f'{where}: needs "video" (or "id") and "prompt"')
        listed = {p for p, _, _ in named}
        found: list[tuple[Path, str | None, str]] = []
        for entry in sorted(source.iterdir()):
            if entry.suffix.lower() not in VIDEO_TYPES:
                continue
            path = _inside(root, entry, str(entry))
            if path in listed:
                continue
            prompt = by_stem.get(entry.stem)
            sidecar = entry.with_suffix(".txt")
            if prompt is None and sidecar.exists():
                side = _inside(root, sidecar, str(sidecar))
                try:
                    raw = read_regular_file(side, _MAX_SIDECAR_BYTES)
                except (OSError, ValueError) as exc:
                    report.skipped.append(f"{sidecar}: cannot read the prompt: {exc}")
                    raw = b""
                prompt = raw.decode("utf-8", errors="replace").strip() or None
            found.append((path, prompt, str(entry)))
        found += named
        return found, report
    root = source.resolve().parent
    found = []
    for n, obj in _records(source, report):
        where = f"{source}:{n}"
        video = obj.get("video")
        if not isinstance(video, str) or not video.strip():
            report.skipped.append(f'{where}: "video" must be a path relative to {source.name}')
            continue
        path = _inside(root, root / video.strip(), f'{where}: "video" {video!r}')
        found.append((path, _prompt_of(obj), where))
    return found, report


def import_source(store: Store, source: Path, max_bytes: int, max_prompt: int) -> ImportReport:
    """Queue every (video, prompt) of ``source``; ImportRefused when a path leaves it."""
    found, report = collect(source)
    for path, prompt, where in found:
        if prompt is None:
            hint = json.dumps({"video": path.name, "prompt": "..."})
            report.skipped.append(
                f"{where}: no prompt: add a line {hint} to {path.parent}/prompts.jsonl, or "
                f"write the prompt into {path.with_suffix('.txt')}; skipped"
            )
            continue
        try:
            prompt = check_prompt(prompt, max_prompt)
        except InvalidInput as exc:
            report.skipped.append(f"{where}: {exc.message}; skipped")
            continue
        if path.suffix.lower() not in VIDEO_TYPES:
            report.skipped.append(f"{where}: {path.name} is not an mp4/webm/mov/mkv/avi; skipped")
            continue
        try:
            data = read_regular_file(path, max_bytes)
            info = probe(data, str(path))
        except OSError as exc:
            report.skipped.append(f"{where}: cannot read {path}: {exc.strerror}; skipped")
            continue
        except ValueError as exc:
            report.skipped.append(f"{where}: {exc}; skipped")
            continue
        except InvalidInput as exc:
            report.skipped.append(f"{where}: {exc.message}; skipped")
            continue
        sha = hashlib.sha256(data).hexdigest()
        added = store.add_item(
            item_id_of(sha, prompt),
            prompt,
            str(path),
            sha,
            info.media_type,  # what the container is (a .mov plays as video/mp4)
            info.fps,
            info.frames,
            "import",
        )
        if added:
            report.added += 1
        else:
            report.present += 1
    return report


_EXT = {v: k for k, v in VIDEO_TYPES.items() if k != ".mov"}


def add_upload(store: Store, data: bytes, prompt: str, max_prompt: int) -> tuple[str, bool]:
    """Store an uploaded video under the data dir and queue it: (item id, newly added)."""
    prompt = check_prompt(prompt, max_prompt)
    info = probe(data, "the uploaded video")
    sha = hashlib.sha256(data).hexdigest()
    item_id = item_id_of(sha, prompt)
    rel = Path(UPLOADS) / f"{sha[:32]}{_EXT[info.media_type]}"
    target = store.data_dir / rel
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    added = store.add_item(
        item_id, prompt, str(rel), sha, info.media_type, info.fps, info.frames, "upload"
    )
    return item_id, added
