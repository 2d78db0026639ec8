"""Training examples from LiFT-HRA records, prepared exactly as the critic serves them.

Each record becomes the question the critic asks at serving time for its dimension (the
same templates, rendered by the family with the video placeholders expanded; the frames
decoded, sampled and preprocessed by the critic engine's own path: ``CriticEngine._prepare``
then the backend's ``prepare``) followed by the answer ``"<Label>. <reason>"`` and the
token the family stops on. Each (video, caption) is decoded and prepared once per run.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lift.critique import Critique
from lift.errors import LiftError
from lift.hra.records import HraRecord, read_hra, resolve_video
from lift.serving import Deadline
from lift.templates import Templates
from lift.uris import FileTooLarge, NotARegularFile, is_uri, read_regular_file

MAX_LISTED_ERRORS = 10


class TrainDataError(ValueError):
    """A training or evaluation file (or one of its videos) cannot be used."""


@dataclass(frozen=True)
class Example:
    """One (video, dimension) rating as token ids."""

    key: tuple[str, str]
    """(resolved video path, caption): the prepared video it asks about."""
    question: tuple[int, ...]
    answer: tuple[int, ...]
    """The answer's tokens, end token included (the loss is on these only)."""


def read_records(path: Path, templates: Templates) -> list[HraRecord]:
    """Every record of an HRA file, or TrainDataError listing the bad lines."""
    if path.is_dir():
        raise TrainDataError(f"{path} is a directory; give an HRA file (JSON lines)")
    records, errors = read_hra(path, templates)
    if errors:
        shown = "\n".join(f"  {path}:{e}" for e in errors[:MAX_LISTED_ERRORS])
        more = len(errors) - MAX_LISTED_ERRORS
        tail = f"\n  ... and {more} more" if more > 0 else ""
        raise TrainDataError(
            f"{path} has {len(errors)} bad records (`lift hra validate {path}` lists them):\n"
            f"{shown}{tail}"
        )
    uris = [r for r in records if is_uri(r.video)]
    if uris:
        raise TrainDataError(
            f"{path}:line {uris[0].line}: {uris[0].video} is a URI; training reads local video "
            "files only (paths relative to the data file)"
        )
    return records


class PreparedVideos:
    """Each (video, caption) decoded and prepared once, through the serving engine.

    The prepared pixels (tens of MB per video at a real model's resolution) are written to
    ``cache`` (one ``.npy`` per video) and held memory-mapped, so memory does not grow with
    the number of videos; a batch reads its videos' pixels from there.
    """

    def __init__(self, engine: Any, cache: Path | None = None) -> None:
        self.engine = engine
        self.cache = cache
        self.items: dict[tuple[str, str], Any] = {}
        self.digests: dict[str, str] = {}

    def add(
        self, data_file: Path, records: Sequence[HraRecord], allow_outside: bool = False
    ) -> list[tuple[str, str]]:
        """Prepare the records' videos (those not prepared yet); their keys, in record order.

        A video must resolve inside the data file's folder unless ``allow_outside``."""
        from lift.services.critic.engine import VideoSource

        keys = []
        max_bytes = int(self.engine.settings.max_video_bytes)
        for r in records:
            key = (resolve_video(data_file, r.video), r.prompt)
            keys.append(key)
            if key in self.items:
                continue
            where = f"{data_file}:line {r.line}: {r.video}"
            data = read_video(where, data_file, key[0], max_bytes, allow_outside)
            try:
                prepared = self.engine._prepare(VideoSource(data=data), key[1], Deadline())
            except LiftError as exc:
                raise TrainDataError(
                    f"{data_file}:line {r.line}: {key[0]}: {getattr(exc, 'message', exc)}"
                ) from None
            self.items[key] = self._spill(prepared)
            self.digests[key[0]] = prepared.digest.hex()
        return keys

    def _spill(self, prepared: Any) -> Any:
        """``prepared`` with its pixels on disk (memory-mapped, read-only)."""
        import numpy as np

        if self.cache is None:
            return prepared
        vision = prepared.item.vision
        self.cache.mkdir(parents=True, exist_ok=True)
        path = self.cache / f"{prepared.digest.hex()}.npy"
        if not path.is_file():
            tmp = path.with_suffix(".tmp.npy")
            np.save(tmp, np.ascontiguousarray(vision.pixels))
            os.replace(tmp, path)
        pixels = np.load(path, mmap_mode="r")
        item = replace(prepared.item, vision=replace(vision, pixels=pixels))
        return replace(prepared, item=item)

    def held_bytes(self) -> int:
        """Bytes of prepared pixels held in memory (memory-mapped ones not counted)."""
        import numpy as np

        return sum(
            p.item.vision.pixels.nbytes
            for p in self.items.values()
            if not isinstance(p.item.vision.pixels, np.memmap)
        )

    def judge(self, keys: Sequence[tuple[str, str]], chunk: int = 8) -> list[Critique | str]:
        """Score prepared videos with the engine's own judging path (label probabilities)."""
        out: list[Critique | str] = []
        for i in range(0, len(keys), chunk):
            batch = [self.items[k] for k in keys[i : i + chunk]]
            out += self.engine._judge(batch, False, Deadline())
        return out


def read_video(
    where: str, data_file: Path, path: str, max_bytes: int, allow_outside: bool
) -> bytes:
    """The bytes of a record's video file (``where`` names the record in errors).

    Refused: a path resolving outside the data file's folder (absolute, ``..``, a link out)
    unless ``allow_outside``; a final link, anything but a regular file (opened without
    blocking, so a FIFO cannot hang the run); more than ``max_bytes`` (the critic's
    max_video_bytes, checked before reading)."""
    try:
        root = data_file.parent.resolve()
        target = Path(path).resolve()
    except (OSError, RuntimeError) as exc:
        raise TrainDataError(f"{where}: not a usable path: {exc}") from None
    if not allow_outside and not target.is_relative_to(root):
        raise TrainDataError(
            f"{where}: resolves to {target}, outside {root} (the data file's folder); move "
            "the videos under that folder or pass --allow-outside-data"
        )
    try:
        return read_regular_file(target, max_bytes)
    except NotARegularFile:
        raise TrainDataError(f"{where}: {target} is not a regular file") from None
    except FileTooLarge as exc:
        size = f"{exc.size} bytes, over" if exc.size is not None else "over"  # None: it grew
        raise TrainDataError(
            f"{where}: {target} is {size} the critic's max_video_bytes ({max_bytes})"
        ) from None
    except OSError as exc:
        raise TrainDataError(f"{where}: cannot read {target}: {exc.strerror or exc}") from None


def end_token(scorer: Any) -> int:
    """The token the family stops an answer on (its conversation's stop, else end of text)."""
    tok = scorer.tokenizer
    candidates = list(scorer.family.stop_texts(scorer.templates))
    if "<|im_end|>" in str(getattr(tok, "chat_template", None) or ""):
        candidates.append("<|im_end|>")  # ChatML ends a turn there (a base tokenizer's eos
        # is <|endoftext|>, which the chat never shows after an answer)
    for text in candidates:
        tid = tok.convert_tokens_to_ids(text)
        if isinstance(tid, int) and tid != tok.unk_token_id:
            return tid
    if tok.eos_token_id is None:
        raise TrainDataError("the tokenizer has no end-of-sequence token to end answers with")
    return int(tok.eos_token_id)


def build_examples(
    records: Sequence[HraRecord],
    keys: Sequence[tuple[str, str]],
    videos: PreparedVideos,
    scorer: Any,
    data_file: Path | str = "",
) -> list[Example]:
    """Question + answer tokens of every record (``keys`` from :meth:`PreparedVideos.add`)."""
    t = scorer.templates
    end = end_token(scorer)
    out = []
    for r, key in zip(records, keys, strict=True):
        item = videos.items[key].item
        if r.dimension not in item.dims:
            raise TrainDataError(
                f"{data_file}:line {r.line}: {r.video} rates {r.dimension.value}, which the "
                "critic does not "
                "ask about this video (one frame has no motion)"
            )
        question = item.rows[item.dims.index(r.dimension)]
        text = (t.answer_prefix(r.label) + r.reason).rstrip()
        answer = scorer.family.answer_ids(scorer.tokenizer, t, text)
        if r.reason.strip():
            answer = [*answer, end]
        # else (a "good" a person gave without a reason, as the feedback page allows): the
        # label only, no end token. The served critic always goes on to say a reason, so
        # "<Label>." then the end would teach an answer it can never give.
        out.append(Example(key, tuple(question), tuple(answer)))
    return out


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def unsayable(records: Sequence[HraRecord], examples: Sequence[Example], scorer: Any) -> list[int]:
    """Lines of records whose reason the served critic could never say as written.

    The critic's decoder never starts a reason with a whitespace-only token (a reason must
    say something); a tokenizer that splits the reason's first word into a lone space and
    the word trains exactly that start, so such reasons come out garbled at serving time.
    """
    lines = []
    for r, e in zip(records, examples, strict=True):
        prefix = list(scorer.forced[r.label])
        after = e.answer[len(prefix)] if len(e.answer) > len(prefix) + 1 else None
        if list(e.answer[: len(prefix)]) == prefix and after is not None and scorer._blank[after]:
            lines.append(r.line)
    return lines


def answer_warnings(
    data_file: Path,
    records: Sequence[HraRecord],
    examples: Sequence[Example],
    scorer: Any,
    max_length: int | None,
) -> list[str]:
    """Warnings (one per kind, naming the first file:line) about answers the served critic
    cannot say as trained: an empty reason (it always says one), an answer that does not
    start with the label prefix it forces, a reason longer than it lets a reason run, a
    row (question + answer) longer than the model takes."""
    kinds: dict[str, list[int]] = {}
    for r, e in zip(records, examples, strict=True):
        prefix = list(scorer.forced[r.label])
        if not r.reason.strip():
            kinds.setdefault("empty", []).append(r.line)
        if list(e.answer[: len(prefix)]) != prefix:
            kinds.setdefault("prefix", []).append(r.line)
        elif len(e.answer) - len(prefix) - 1 > scorer.max_reason_tokens:
            kinds.setdefault("long", []).append(r.line)
        if max_length is not None and len(e.question) + len(e.answer) > max_length:
            kinds.setdefault("length", []).append(r.line)
    text = {
        "empty": "have an empty reason: they train the label only (the critic always goes "
        "on to say a reason, learned from the ratings that give one)",
        "prefix": "answer in a form that does not start with the critic's forced "
        '"<Label>." prefix as tokenized; the critic never says these as written',
        "long": f"have reasons over the critic's max_reason_tokens ({scorer.max_reason_tokens}"
        " tokens); served reasons are cut there",
        "length": f"are longer (question + answer) than the model takes ({max_length} tokens)",
    }
    return [
        f"warning: {len(lines)} ratings (e.g. {data_file}:line {lines[0]}) {text[kind]}"
        for kind, lines in kinds.items()
    ]
