"""Export the ratings as LiFT-HRA JSON lines, split into train and test by video.

One record per (item, dimension), as `lift hra validate` reads them and `lift critic
train` learns from: the human turn is the critic's question for the dimension with the
item's prompt, the gpt turn ``"<Label>. <reason>"``. Several annotators' ratings of an
item become one label per dimension:

- ``majority``: the label most annotators gave; a tie is left out (and counted);
- ``all``: only a label every annotator of the item gave.

The reason comes from the first annotator (oldest rating) who gave that label with a
reason. The split is by video content (every item of one video file on the same side),
shuffled by ``seed``: the same database and seed give the same files. Videos are copied
into ``OUT/videos/`` so the files' paths are relative and the folder moves as a whole.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from lift.critique import DIMENSIONS, Dimension, Label
from lift.services.feedback.store import Item, Rating, Store
from lift.templates import VIDEO_MARKER, Templates

Consensus = Literal["majority", "all"]

_EXT = {
    "video/mp4": ".mp4",
    "video/webm": ".webm",
    "video/x-matroska": ".mkv",
    "video/x-msvideo": ".avi",
    "video/quicktime": ".mov",
}


_OURS = {"train.jsonl", "test.jsonl", "videos"}
_OUR_VIDEO = re.compile(r"[0-9a-f]{16}\.(mp4|webm|mkv|avi|mov)")


def check_out(out: Path) -> None:
    """ValueError unless ``out`` is a new or empty folder, or an earlier export to replace."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder (new, empty or an earlier export)")
    if not out.is_dir():
        return
    others = sorted(p.name for p in out.iterdir() if p.name not in _OURS)
    stray = (out / "videos").is_dir() and any(
        not _OUR_VIDEO.fullmatch(p.name) for p in (out / "videos").iterdir()
    )
    if others or stray or ((out / "videos").exists() and not (out / "videos").is_dir()):
        what = ", ".join(others[:5]) if others else "videos/ holds files of its own"
        raise ValueError(
            f"--out {out} holds other things ({what}); give a new or empty folder, or an "
            "earlier export of this command (train.jsonl, test.jsonl, videos/) to replace"
        )


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


@dataclass
class ExportSummary:
    """What an export wrote and what it left out."""

    train_records: int = 0
    test_records: int = 0
    train_videos: int = 0
    test_videos: int = 0
    items: int = 0
    ties: int = 0
    """(item, dimension) pairs left out: no majority (majority) or no unanimity (all)."""
    missing: list[str] = field(default_factory=list)
    """Items whose video file is gone or no longer the bytes that were rated (left out)."""
    flagged: list[str] = field(default_factory=list)
    """Exported items that an annotator flagged (and did not undo): the operator reads the
    notes on /overview and may want them out of the training data."""

    def line(self) -> str:
        """One line for the terminal."""
        text = (
            f"train: {_n(self.train_records, 'record')} of {_n(self.train_videos, 'video')}, "
            f"test: {_n(self.test_records, 'record')} of {_n(self.test_videos, 'video')} "
            f"({_n(self.items, 'rated item')}; {_n(self.ties, 'item-dimension')} without "
            "consensus left out)"
        )
        if self.missing:
            text += f"; {len(self.missing)} items whose video is gone or changed left out"
        if self.flagged:
            n = len(self.flagged)
            text += f"; {n} exported item{'' if n == 1 else 's'} flagged"
        return text


def consensus_label(
    ratings: list[Rating], dim: Dimension, mode: Consensus
) -> tuple[Label, str] | None:
    """The label of one item on one dimension and a reason for it; None without consensus."""
    labels = [r.labels[dim] for r in ratings]
    counts = Counter(labels).most_common()
    top, n = counts[0]
    if mode == "all" and n != len(labels):
        return None
    if mode == "majority" and len(counts) > 1 and counts[1][1] == n:
        return None
    reason = next(
        (r.reasons[dim] for r in ratings if r.labels[dim] is top and r.reasons.get(dim)), ""
    )
    return top, reason


def split_videos(keys: list[str], test_fraction: float, seed: int) -> set[str]:
    """The keys that go to test: a seeded shuffle; both sides non-empty when 2+ keys."""
    order = sorted(keys)
    random.Random(seed).shuffle(order)
    n_test = round(len(order) * test_fraction)
    if len(order) >= 2 and 0 < test_fraction < 1:
        n_test = min(max(n_test, 1), len(order) - 1)
    return set(order[:n_test])


def export_hra(
    store: Store,
    out: Path,
    templates: Templates,
    test_fraction: float = 0.2,
    seed: int = 0,
    consensus: Consensus = "majority",
) -> ExportSummary:
    """Write ``out/train.jsonl``, ``out/test.jsonl`` and ``out/videos/``; the summary."""
    if not 0 <= test_fraction <= 1:
        raise ValueError(f"test fraction must be within 0..1, got {test_fraction}")
    check_out(out)
    summary = ExportSummary()
    items = {i.item_id: i for i in store.items()}
    by_item: dict[str, list[Rating]] = defaultdict(list)
    for r in store.ratings():
        by_item[r.item_id].append(r)
    records: dict[str, list[tuple[Item, Dimension, Label, str]]] = defaultdict(list)
    for item_id in sorted(by_item, key=lambda i: items[i].seq):
        item = items[item_id]
        if store.servable_file(item) is None:
            summary.missing.append(item_id)
            continue
        summary.items += 1
        for dim in DIMENSIONS:
            decided = consensus_label(by_item[item_id], dim, consensus)
            if decided is None:
                summary.ties += 1
                continue
            records[item.video_sha256].append((item, dim, *decided))
    if not records:
        return summary  # nothing to write: no file is made
    test = split_videos([k for k, v in records.items() if v], test_fraction, seed)
    videos = out / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    lines: dict[str, list[str]] = {"train": [], "test": []}
    copied: set[str] = set()
    for sha, rows in sorted(records.items(), key=lambda kv: kv[1][0][0].seq):
        side = "test" if sha in test else "train"
        if side == "test":
            summary.test_videos += 1
        else:
            summary.train_videos += 1
        for item, dim, label, reason in rows:
            # One file per item: the same video under two prompts is two rated videos, and an
            # HRA file rates each video once per dimension.
            name = f"{item.item_id}{_EXT.get(item.media_type, '.mp4')}"
            if name not in copied:
                source = store.servable_file(item)
                if source is None:
                    raise OSError(f"the video of item {item.item_id} went away during the export")
                shutil.copyfile(source, videos / name)
                copied.add(name)
            record = {
                "id": f"{item.item_id}-{dim.value}",
                "video": f"videos/{name}",
                "dimension": dim.value,
                "prompt": item.prompt,
                "conversations": [
                    {
                        "from": "human",
                        "value": f"{VIDEO_MARKER}\n{templates.question(dim, item.prompt)}",
                    },
                    {"from": "gpt", "value": (templates.answer_prefix(label) + reason).strip()},
                ],
            }
            lines[side].append(json.dumps(record, ensure_ascii=False))
    for side, rows_ in lines.items():
        (out / f"{side}.jsonl").write_text("".join(x + "\n" for x in rows_), encoding="utf-8")
    for old in videos.iterdir():  # an earlier export's videos that are not in this one
        if _OUR_VIDEO.fullmatch(old.name) and old.name not in copied and old.is_file():
            old.unlink()
    summary.train_records = len(lines["train"])
    summary.test_records = len(lines["test"])
    flagged = {f.item_id for f in store.flags()}
    exported = {item.item_id for rows in records.values() for item, *_ in rows}
    summary.flagged = sorted(exported & flagged, key=lambda i: items[i].seq)
    return summary
