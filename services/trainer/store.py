"""Durable run records: runs, their configs, events and per-step metrics in SQLite.

One file (``<data_dir>/trainer.sqlite``) in WAL mode with ``synchronous=FULL``:
a committed write survives ``kill -9`` and power loss. All access goes through
one connection under a lock (SQLite serialises writers anyway; the trainer writes
a few rows per step).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lift.runs import Event, RunState

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    config TEXT NOT NULL,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    step INTEGER NOT NULL DEFAULT 0,
    total_steps INTEGER NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    adapter_version TEXT NOT NULL DEFAULT '',
    result TEXT,
    resumes INTEGER NOT NULL DEFAULT 0,
    crashes INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    time REAL NOT NULL,
    kind TEXT NOT NULL,
    step INTEGER NOT NULL,
    message TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (run_id, step)
);
"""


@dataclass(frozen=True)
class RunRecord:
    """A run as stored."""

    id: str
    name: str
    state: RunState
    config: dict[str, Any]
    created: float
    started: float | None
    finished: float | None
    step: int
    total_steps: int
    reason: str
    adapter_version: str
    result: dict[str, Any] | None
    resumes: int
    crashes: int = 0
    """Times the trainer died while the run was running (bounds resuming; not in the API)."""

    def to_json(self) -> dict[str, Any]:
        """The HTTP (and proto JSON) form."""
        return {
            "id": self.id,
            "name": self.name,
            "state": self.state.value,
            "step": self.step,
            "total_steps": self.total_steps,
            "reason": self.reason,
            "adapter_version": self.adapter_version,
            "created_unix_s": self.created,
            "started_unix_s": self.started,
            "finished_unix_s": self.finished,
            "resumes": self.resumes,
            "config": self.config,
            "result": self.result,
        }


_UPDATABLE = {
    "state",
    "started",
    "finished",
    "step",
    "reason",
    "adapter_version",
    "result",
    "resumes",
    "crashes",
}


class Store:
    """Runs, events and metrics in one SQLite file; safe to share between threads."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(runs)").fetchall()}
        if "crashes" not in columns:  # a database from before crash counting
            self._db.execute("ALTER TABLE runs ADD COLUMN crashes INTEGER NOT NULL DEFAULT 0")

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def create_run(
        self, run_id: str, name: str, config: dict[str, Any], total_steps: int
    ) -> RunRecord:
        """Insert a queued run."""
        with self._lock:
            self._db.execute(
                "INSERT INTO runs (id, name, state, config, created, total_steps) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, name, RunState.QUEUED.value, json.dumps(config), time.time(), total_steps),
            )
        run = self.get(run_id)
        assert run is not None
        return run

    def get(self, run_id: str) -> RunRecord | None:
        """A run, or None."""
        with self._lock:
            row = self._db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return None if row is None else _record(row)

    def runs(
        self,
        state: RunState | None = None,
        limit: int = 100,
        before: tuple[float, str] | None = None,
    ) -> list[RunRecord]:
        """Runs, newest first; ``before`` = (created, id) starts after that run (keyset paging)."""
        where: list[str] = []
        args: list[Any] = []
        if state is not None:
            where.append("state = ?")
            args.append(state.value)
        if before is not None:
            where.append("(created < ? OR (created = ? AND id < ?))")
            args += [before[0], before[0], before[1]]
        query = "SELECT * FROM runs" + (" WHERE " + " AND ".join(where) if where else "")
        with self._lock:
            rows = self._db.execute(
                query + " ORDER BY created DESC, id DESC LIMIT ?", (*args, limit)
            ).fetchall()
        return [_record(r) for r in rows]

    def count_by_state(self) -> dict[RunState, int]:
        """How many runs are in each state."""
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM runs GROUP BY state").fetchall()
        counts = {s: 0 for s in RunState}
        counts.update({RunState(r[0]): r[1] for r in rows})
        return counts

    def finish_unless_final(self, run_id: str, state: RunState, reason: str) -> bool:
        """Move an unfinished run to a final ``state``; False when it was final already.

        One statement, so a cancel and a worker ending the same run cannot both win.
        """
        final = [s.value for s in RunState if s.final]
        with self._lock:
            cur = self._db.execute(
                f"UPDATE runs SET state = ?, reason = ?, finished = ? "
                f"WHERE id = ? AND state NOT IN ({', '.join('?' * len(final))})",
                (state.value, reason, time.time(), run_id, *final),
            )
        return cur.rowcount == 1

    def update(self, run_id: str, **fields: Any) -> None:
        """Set some columns of a run."""
        bad = set(fields) - _UPDATABLE
        if bad:
            raise ValueError(f"not updatable: {sorted(bad)}")
        values = [
            json.dumps(v)
            if k == "result" and v is not None
            else (v.value if isinstance(v, RunState) else v)
            for k, v in fields.items()
        ]
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self._lock:
            self._db.execute(f"UPDATE runs SET {sets} WHERE id = ?", (*values, run_id))

    def add_event(
        self, run_id: str, kind: str, step: int, message: str, data: dict[str, Any] | None = None
    ) -> Event:
        """Append an event; its seq is the run's next."""
        now = time.time()
        payload = json.dumps(data or {})
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT COALESCE(MAX(seq), 0) FROM events WHERE run_id = ?", (run_id,)
                ).fetchone()
                seq = int(row[0]) + 1
                self._db.execute(
                    "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (run_id, seq, now, kind, step, message, payload),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return Event(run_id, seq, now, kind, step, message, data or {})

    def events(self, run_id: str, after_seq: int = 0, limit: int = 10_000) -> list[Event]:
        """A run's events with seq > ``after_seq``, in order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM events WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                (run_id, after_seq, limit),
            ).fetchall()
        return [
            Event(
                r["run_id"],
                r["seq"],
                r["time"],
                r["kind"],
                r["step"],
                r["message"],
                json.loads(r["data"]),
            )
            for r in rows
        ]

    def put_metrics(self, run_id: str, step: int, data: dict[str, Any]) -> None:
        """Store (or, after a resume, replace) one step's metrics."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO metrics VALUES (?, ?, ?)", (run_id, step, json.dumps(data))
            )

    def metrics(self, run_id: str, up_to_step: int | None = None) -> list[dict[str, Any]]:
        """A run's per-step metrics in step order (each has its ``step``)."""
        query = "SELECT step, data FROM metrics WHERE run_id = ?"
        args: tuple[Any, ...] = (run_id,)
        if up_to_step is not None:
            query, args = query + " AND step <= ?", (run_id, up_to_step)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY step", args).fetchall()
        return [{"step": r[0], **json.loads(r[1])} for r in rows]


def _record(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        id=row["id"],
        name=row["name"],
        state=RunState(row["state"]),
        config=json.loads(row["config"]),
        created=row["created"],
        started=row["started"],
        finished=row["finished"],
        step=row["step"],
        total_steps=row["total_steps"],
        reason=row["reason"],
        adapter_version=row["adapter_version"],
        result=None if row["result"] is None else json.loads(row["result"]),
        resumes=row["resumes"],
        crashes=row["crashes"],
    )
