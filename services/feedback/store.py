"""Where the ratings live: items, and every annotator action as an append-only log.

SQLAlchemy Core over portable column types and plain SELECT/INSERT/UPDATE, so the same
code runs on SQLite (the default: one file, WAL, foreign keys on) and on a server
database given by URL (``postgresql+psycopg://...``; only SQLite is exercised by the
tests here). Nothing accepted is ever deleted: an undo stamps ``undone_at`` on the
action it takes back, and every count reads only the actions not undone.

One process owns a database: check-then-write steps (a second rating of the same
item by the same annotator is refused) run under a lock in this process. Several
service replicas on one server database would need a unique constraint or
serializable transactions for that check; one feedback process serves many
annotators, so this keeps to the simple, portable form.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Double,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    select,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from lift.critique import ASSESSED_LABELS, DIMENSIONS, Dimension, Label
from lift.errors import Conflict, InvalidInput, NotFound

MAX_REASON_CHARS = 2000
MAX_NOTE_CHARS = 2000

RATING, SKIP, FLAG = "rating", "skip", "flag"
KINDS = (RATING, SKIP, FLAG)

metadata = MetaData()

items = Table(
    "items",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True, comment="import order"),
    Column("item_id", String(32), nullable=False, unique=True),
    Column("prompt", Text, nullable=False),
    Column("video_path", Text, nullable=False, comment="absolute, or relative to the data dir"),
    Column("video_sha256", String(64), nullable=False),
    Column("media_type", String(64), nullable=False),
    Column("fps", Double, nullable=True),
    Column("frames", Integer, nullable=True),
    Column("source", String(16), nullable=False, comment="import or upload"),
    Column("added_at", Double, nullable=False),
)

actions = Table(
    "actions",
    metadata,
    Column("action_id", Integer, primary_key=True, autoincrement=True),
    Column("annotator", String(128), nullable=False),
    Column("item_id", String(32), ForeignKey("items.item_id"), nullable=False),
    Column("kind", String(8), nullable=False),
    Column("note", Text, nullable=True),
    Column("at", Double, nullable=False),
    Column("undone_at", Double, nullable=True),
    Index("ix_actions_annotator", "annotator"),
    Index("ix_actions_item", "item_id"),
)

rating_labels = Table(
    "rating_labels",
    metadata,
    Column("action_id", Integer, ForeignKey("actions.action_id"), primary_key=True),
    Column("dimension", String(32), primary_key=True),
    Column("label", String(8), nullable=False),
    Column("reason", Text, nullable=True),
)


@dataclass(frozen=True)
class Item:
    """One (video, prompt) of the queue."""

    seq: int
    item_id: str
    prompt: str
    video_path: str
    video_sha256: str
    media_type: str
    fps: float | None
    frames: int | None
    source: str


@dataclass(frozen=True)
class Rating:
    """One annotator's accepted (not undone) rating of one item."""

    rating_id: int
    annotator: str
    item_id: str
    at: float
    labels: dict[Dimension, Label]
    reasons: dict[Dimension, str]


@dataclass(frozen=True)
class Me:
    """Progress of one annotator (the ``me`` fields of the HTTP replies)."""

    annotator: str
    rated: int
    skipped: int
    flagged: int
    remaining: int
    total: int


@dataclass(frozen=True)
class Flag:
    """A flag an annotator raised on an item."""

    item_id: str
    annotator: str
    note: str
    at: float


@dataclass
class _State:
    """What the queue looks like now (read in one pass over the live actions)."""

    ratings: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    handled: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))


def check_rating(
    labels: Mapping[str, str], reasons: Mapping[str, str]
) -> tuple[dict[Dimension, Label], dict[Dimension, str]]:
    """Validate a rating: a label on every dimension, a reason for every label but good.

    InvalidInput names the dimension and what to send.
    """
    dims = ", ".join(d.value for d in DIMENSIONS)
    words = ", ".join(lab.value for lab in ASSESSED_LABELS)
    for key in list(labels) + list(reasons):
        if key not in {d.value for d in DIMENSIONS}:
            raise InvalidInput(f"unknown dimension {key[:64]!r}: use {dims}")
    out_labels: dict[Dimension, Label] = {}
    out_reasons: dict[Dimension, str] = {}
    for dim in DIMENSIONS:
        raw = labels.get(dim.value)
        if raw is None:
            raise InvalidInput(f"labels.{dim.value} is missing: rate every dimension ({words})")
        if raw not in {lab.value for lab in ASSESSED_LABELS}:
            raise InvalidInput(f"labels.{dim.value} must be one of {words}, got {raw[:32]!r}")
        label = Label(raw)
        reason = (reasons.get(dim.value) or "").strip()
        if len(reason) > MAX_REASON_CHARS:
            raise InvalidInput(
                f"reasons.{dim.value} is {len(reason)} characters; keep it to {MAX_REASON_CHARS}"
            )
        if label is not Label.GOOD and not reason:
            raise InvalidInput(
                f"reasons.{dim.value} is required: say why {dim.value.replace('_', ' ')} "
                f"is {label.value} (a reason is optional only for good)"
            )
        out_labels[dim] = label
        if reason:
            out_reasons[dim] = reason
    return out_labels, out_reasons


class Store:
    """The feedback database: items, actions, rating labels."""

    def __init__(self, url: str, data_dir: Path) -> None:
        self.url = url
        self.data_dir = data_dir
        self._lock = threading.RLock()
        self._last_t = 0.0
        # The item /v1/next last offered each annotator: the one item they may still rate
        # once its overlap is full (two people were offered its last slot at once).
        self._offered: dict[str, str] = {}
        # (mtime, size, inode) of each video file when its SHA-256 was last checked, and
        # whether it matched
        self._verified: dict[str, tuple[tuple[int, int, int], bool]] = {}
        if data_dir.exists() and not data_dir.is_dir():
            raise ValueError(f"the data directory {data_dir} is a file; give a folder (--data)")
        if url.startswith("sqlite"):
            try:
                data_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ValueError(f"cannot make the data directory {data_dir}: {exc}") from None
        try:
            self.engine: Engine = create_engine(
                url,
                connect_args={"check_same_thread": False} if url.startswith("sqlite") else {},
            )
            if self.engine.dialect.name == "sqlite":
                event.listen(self.engine, "connect", _sqlite_pragmas)
            metadata.create_all(self.engine)
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            # a driver that is not installed, a malformed URL, a server that refuses
            why = getattr(exc, "orig", None) or exc  # the driver's words, not SQLAlchemy's links
            raise ValueError(f"cannot open the feedback database {safe_url(url)}: {why}") from None

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    def _now(self) -> float:
        """Wall time, strictly increasing in this process (orders actions and undos)."""
        self._last_t = max(time.time(), self._last_t + 1e-6)
        return self._last_t

    # -- items -------------------------------------------------------------------

    def add_item(
        self,
        item_id: str,
        prompt: str,
        video_path: str,
        video_sha256: str,
        media_type: str,
        fps: float | None,
        frames: int | None,
        source: str,
    ) -> bool:
        """Queue an item; False when an item with this id is there already (re-import)."""
        with self._lock, self.engine.begin() as conn:
            if conn.execute(select(items.c.seq).where(items.c.item_id == item_id)).first():
                return False
            conn.execute(
                items.insert().values(
                    item_id=item_id,
                    prompt=prompt,
                    video_path=video_path,
                    video_sha256=video_sha256,
                    media_type=media_type,
                    fps=fps,
                    frames=frames,
                    source=source,
                    added_at=self._now(),
                )
            )
            return True

    def item(self, item_id: str) -> Item:
        """The item with this id; NotFound otherwise."""
        with self.engine.connect() as conn:
            row = conn.execute(select(items).where(items.c.item_id == item_id)).first()
        if row is None:
            raise NotFound(f"no item {item_id[:64]!r} in the queue")
        return _item(row._mapping)

    def items(self) -> list[Item]:
        """Every item in import order."""
        with self.engine.connect() as conn:
            return [_item(r._mapping) for r in conn.execute(select(items).order_by(items.c.seq))]

    def video_file(self, item: Item) -> Path:
        """Where the item's video is on disk (uploads are relative to the data dir)."""
        p = Path(item.video_path)
        return p if p.is_absolute() else self.data_dir / p

    def servable_file(self, item: Item) -> Path | None:
        """The item's video file if it still holds the bytes that were rated, else None.

        The file itself must be a regular file (not a symlink put in its place, a FIFO or
        a device); the folders above it may be links (an uploads folder moved to a bigger
        disk). A file whose bytes changed is not the video that was rated: its SHA-256 is
        checked again whenever its mtime, size or inode changed (either answer is kept).
        """
        p = self.video_file(item)
        try:
            real = p.parent.resolve(strict=True) / p.name
            st = os.lstat(real)
        except (OSError, RuntimeError):
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        known = self._verified.get(item.item_id)
        if known is None or known[0] != key:
            # a file rewritten in place would put these ratings on another video
            try:
                same = _sha256_of(real) == item.video_sha256
            except OSError:
                return None
            known = (key, same)
            self._verified[item.item_id] = known
        return real if known[1] else None

    # -- state -------------------------------------------------------------------

    def _state(self, conn: Any) -> _State:
        state = _State()
        live = select(actions.c.annotator, actions.c.item_id, actions.c.kind).where(
            actions.c.undone_at.is_(None)
        )
        for annotator, item_id, kind in conn.execute(live):
            state.handled[annotator].add(item_id)
            if kind == RATING:
                state.ratings[item_id] += 1
        return state

    def _offerable(self, conn: Any, state: _State, annotator: str, overlap: int) -> list[str]:
        """Item ids this annotator may get, best first: closest to complete, then import order."""
        mine = state.handled.get(annotator, set())
        rows = conn.execute(select(items.c.item_id, items.c.seq).order_by(items.c.seq))
        open_items = [
            (iid, seq)
            for iid, seq in rows
            if iid not in mine and state.ratings.get(iid, 0) < overlap
        ]
        open_items.sort(key=lambda t: (-state.ratings.get(t[0], 0), t[1]))
        return [iid for iid, _ in open_items]

    def me(self, annotator: str, overlap: int) -> Me:
        """Counts and what is left for ``annotator``."""
        with self.engine.connect() as conn:
            return self._me(conn, annotator, overlap)

    def _me(self, conn: Any, annotator: str, overlap: int) -> Me:
        state = self._state(conn)
        counts: dict[str, int] = dict.fromkeys(KINDS, 0)
        q = (
            select(actions.c.kind, func.count())
            .where(actions.c.annotator == annotator, actions.c.undone_at.is_(None))
            .group_by(actions.c.kind)
        )
        for kind, n in conn.execute(q):
            counts[kind] = int(n)
        remaining = len(self._offerable(conn, state, annotator, overlap))
        handled = len(state.handled.get(annotator, set()))
        return Me(
            annotator, counts[RATING], counts[SKIP], counts[FLAG], remaining, remaining + handled
        )

    def next_item(self, annotator: str, overlap: int) -> tuple[Item | None, Me]:
        """The item to offer ``annotator`` next (None when nothing is left) and their counts.

        Right after an undo, the item that was taken back comes first while it is still
        open, so the annotator can redo it.
        """
        with self.engine.connect() as conn:
            state = self._state(conn)
            order = self._offerable(conn, state, annotator, overlap)
            if order:
                redo = self._just_undone(conn, annotator)
                if redo in order:
                    order.remove(redo)
                    order.insert(0, redo)
            me = self._me(conn, annotator, overlap)
            if not order:
                return None, me
            self._offered[annotator] = order[0]
            row = conn.execute(select(items).where(items.c.item_id == order[0])).first()
            assert row is not None
            return _item(row._mapping), me

    def _just_undone(self, conn: Any, annotator: str) -> str | None:
        """The item of this annotator's last undo, if nothing was done since."""
        last_undo = conn.execute(
            select(actions.c.item_id, actions.c.undone_at)
            .where(actions.c.annotator == annotator, actions.c.undone_at.is_not(None))
            .order_by(actions.c.undone_at.desc())
            .limit(1)
        ).first()
        if last_undo is None:
            return None
        later = conn.execute(
            select(func.count()).where(
                actions.c.annotator == annotator, actions.c.at > last_undo.undone_at
            )
        ).scalar_one()
        return None if later else str(last_undo.item_id)

    # -- actions -----------------------------------------------------------------

    def rate(
        self,
        annotator: str,
        item_id: str,
        labels: Mapping[Dimension, Label],
        reasons: Mapping[Dimension, str],
        overlap: int,
    ) -> int:
        """Record a rating (already checked by :func:`check_rating`); its id.

        Conflict when this annotator already rated the item (undo first to change it), and
        when the item already has its ``overlap`` ratings, unless it is the item this
        annotator was last offered (two people were offered its last slot at once: the
        work is kept, agreement only gains from it). A rating for an item the annotator
        skipped is accepted: they came back to it.
        """
        with self._lock, self.engine.begin() as conn:
            self._must_exist(conn, item_id)
            have = conn.execute(
                select(func.count()).where(
                    actions.c.item_id == item_id,
                    actions.c.kind == RATING,
                    actions.c.undone_at.is_(None),
                )
            ).scalar_one()
            dup = conn.execute(
                select(actions.c.action_id).where(
                    actions.c.annotator == annotator,
                    actions.c.item_id == item_id,
                    actions.c.kind == RATING,
                    actions.c.undone_at.is_(None),
                )
            ).first()
            if dup is not None:
                raise Conflict(
                    f"{annotator} already rated item {item_id}; undo that rating to change it"
                )
            if have >= overlap and self._offered.get(annotator) != item_id:
                raise Conflict(
                    f"item {item_id} already has its {overlap} ratings; GET /v1/next for "
                    "an item that still needs yours"
                )
            action_id = self._insert(conn, annotator, item_id, RATING)
            self._acted(annotator, item_id)
            conn.execute(
                rating_labels.insert(),
                [
                    {
                        "action_id": action_id,
                        "dimension": d.value,
                        "label": labels[d].value,
                        "reason": reasons.get(d) or None,
                    }
                    for d in DIMENSIONS
                ],
            )
            return action_id

    def skip(self, annotator: str, item_id: str, kind: str = SKIP, note: str = "") -> None:
        """Skip (or flag, with a note) an item for this annotator."""
        if len(note) > MAX_NOTE_CHARS:
            raise InvalidInput(f"note is {len(note)} characters; keep it to {MAX_NOTE_CHARS}")
        with self._lock, self.engine.begin() as conn:
            self._must_exist(conn, item_id)
            done = conn.execute(
                select(actions.c.kind)
                .where(
                    actions.c.annotator == annotator,
                    actions.c.item_id == item_id,
                    actions.c.undone_at.is_(None),
                )
                .limit(1)
            ).first()
            if done is not None:
                past = {RATING: "rated", SKIP: "skipped", FLAG: "flagged"}[done.kind]
                raise Conflict(
                    f"{annotator} already {past} item {item_id}; GET /v1/next for the next "
                    "item (POST /v1/undo takes back your latest action)"
                )
            self._insert(conn, annotator, item_id, kind, note.strip() or None)
            self._acted(annotator, item_id)

    def _acted(self, annotator: str, item_id: str) -> None:
        """The offer of ``item_id`` is used up (a later rating of it needs a fresh offer)."""
        if self._offered.get(annotator) == item_id:
            del self._offered[annotator]

    def undo(self, annotator: str) -> tuple[str, str] | None:
        """Take back this annotator's most recent live action: (kind, item_id), or None."""
        with self._lock, self.engine.begin() as conn:
            row = conn.execute(
                select(actions.c.action_id, actions.c.kind, actions.c.item_id)
                .where(actions.c.annotator == annotator, actions.c.undone_at.is_(None))
                .order_by(actions.c.action_id.desc())
                .limit(1)
            ).first()
            if row is None:
                return None
            conn.execute(
                update(actions)
                .where(actions.c.action_id == row.action_id)
                .values(undone_at=self._now())
            )
            return str(row.kind), str(row.item_id)

    def _must_exist(self, conn: Any, item_id: str) -> None:
        if conn.execute(select(items.c.seq).where(items.c.item_id == item_id)).first() is None:
            raise NotFound(f"no item {item_id[:64]!r} in the queue")

    def _insert(
        self, conn: Any, annotator: str, item_id: str, kind: str, note: str | None = None
    ) -> int:
        result = conn.execute(
            actions.insert().values(
                annotator=annotator, item_id=item_id, kind=kind, note=note, at=self._now()
            )
        )
        return int(result.inserted_primary_key[0])

    # -- reading for the overview and the export -----------------------------------

    def ratings(self) -> list[Rating]:
        """Every live rating, oldest first."""
        q = (
            select(
                actions.c.action_id,
                actions.c.annotator,
                actions.c.item_id,
                actions.c.at,
                rating_labels.c.dimension,
                rating_labels.c.label,
                rating_labels.c.reason,
            )
            .join(rating_labels, rating_labels.c.action_id == actions.c.action_id)
            .where(actions.c.kind == RATING, actions.c.undone_at.is_(None))
            .order_by(actions.c.action_id)
        )
        by_id: dict[int, Rating] = {}
        with self.engine.connect() as conn:
            for r in conn.execute(q):
                rating = by_id.get(r.action_id)
                if rating is None:
                    rating = Rating(int(r.action_id), r.annotator, r.item_id, float(r.at), {}, {})
                    by_id[r.action_id] = rating
                rating.labels[Dimension(r.dimension)] = Label(r.label)
                if r.reason:
                    rating.reasons[Dimension(r.dimension)] = r.reason
        return list(by_id.values())

    def activity(self) -> Iterator[tuple[str, str, float, bool]]:
        """(annotator, kind, at, live) of every action ever taken, oldest first."""
        q = select(actions.c.annotator, actions.c.kind, actions.c.at, actions.c.undone_at)
        with self.engine.connect() as conn:
            for a, kind, at, undone in conn.execute(q.order_by(actions.c.action_id)):
                yield a, kind, float(at), undone is None

    def flags(self) -> list[Flag]:
        """Every live flag, oldest first."""
        q = (
            select(actions.c.item_id, actions.c.annotator, actions.c.note, actions.c.at)
            .where(actions.c.kind == FLAG, actions.c.undone_at.is_(None))
            .order_by(actions.c.action_id)
        )
        with self.engine.connect() as conn:
            return [
                Flag(r.item_id, r.annotator, r.note or "", float(r.at)) for r in conn.execute(q)
            ]

    def rating_counts(self) -> dict[str, int]:
        """Live ratings per item id (items without any are absent)."""
        with self.engine.connect() as conn:
            return dict(self._state(conn).ratings)


def _sha256_of(path: Path) -> str:
    """SHA-256 of a regular file, opened without blocking and without following a link."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
        digest = hashlib.sha256()
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _item(m: Any) -> Item:
    """An :class:`Item` of a row mapping of the items table."""
    return Item(
        seq=int(m["seq"]),
        item_id=m["item_id"],
        prompt=m["prompt"],
        video_path=m["video_path"],
        video_sha256=m["video_sha256"],
        media_type=m["media_type"],
        fps=m["fps"],
        frames=m["frames"],
        source=m["source"],
    )


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets the overview read while a rating is written; foreign keys are off by default
    # in SQLite; the busy timeout waits for another writer instead of failing at once.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL: say nothing of it beyond its scheme
        return url.split("://", 1)[0] + "://..."
