"""The memory store: one SQLite file that keeps every memory, its decision, and an audit trail of every
decision and status change.

SQLite is used directly (the standard library's sqlite3): WAL so that a reader never blocks the writer, a
busy timeout so that two processes wait for each other instead of failing, parameterised queries only, and
one transaction per change so that a killed process leaves either the old state or the new one.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sleeptrain.errors import SleeptrainError
from sleeptrain.hippocampus.memory import Memory, Status, Verdict

SCHEMA_VERSION = 1
ACTIVE: tuple[Status, ...] = ("pending", "consolidated")  # what the model is meant to know

_SCHEMA = """
CREATE TABLE IF NOT EXISTS memories (
    id TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    question TEXT,
    answer TEXT,
    subject TEXT,
    source TEXT,
    origin TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    status TEXT NOT NULL,
    decision TEXT,
    reason TEXT NOT NULL DEFAULT '',
    importance REAL,
    scores TEXT NOT NULL DEFAULT '{}',
    supersedes TEXT,
    adapter_version INTEGER
);
CREATE INDEX IF NOT EXISTS memories_status ON memories(status);
CREATE INDEX IF NOT EXISTS memories_subject ON memories(subject);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    memory_id TEXT NOT NULL,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS events_memory ON events(memory_id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sleeps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    output_dir TEXT NOT NULL,
    version INTEGER NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    status TEXT NOT NULL,
    memory_ids TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}'
);
"""

_COLUMNS = (
    "id, text, question, answer, subject, source, origin, created_at, status, decision, reason, importance, "
    "scores, supersedes, adapter_version"
)


@dataclass(frozen=True)
class SleepRecord:
    """One sleep: written as `started` before training (the intent, with the memories it consolidates), then
    `done` in the same transaction that marks them consolidated, or `abandoned` by crash recovery."""

    id: int
    output_dir: str
    version: int
    started_at: float
    finished_at: float | None
    status: str  # started | done | recovered | abandoned
    memory_ids: list[str]
    detail: dict[str, Any]


@dataclass(frozen=True)
class Event:
    """One entry of the audit trail: a decision, or a change of status."""

    seq: int
    memory_id: str
    at: float
    kind: str  # decision | consolidated | superseded | forgotten
    detail: dict[str, Any]


class MemoryStore:
    """Every memory and decision, in one SQLite file. Use as a context manager, or call close()."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise SleeptrainError(f"{self.path}: is a folder, not a memory store file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None)
            self._db.execute("PRAGMA busy_timeout = 30000")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.executescript(_SCHEMA)
            self._db.execute(
                "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        except sqlite3.DatabaseError as exc:
            raise SleeptrainError(f"{self.path}: not a sleeptrain memory store ({exc})") from None
        self._db.row_factory = sqlite3.Row

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        # BEGIN IMMEDIATE takes the write lock up front, so two writers queue instead of deadlocking.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # ------------------------------------------------------------------------------------------ writing

    def new_id(self) -> str:
        return f"m-{uuid.uuid4().hex[:10]}"

    def add(self, memory: Memory, verdict: Verdict) -> Memory:
        """Store a judged memory with its decision. `store` and `correct` make it pending (waiting for sleep),
        `reject` keeps it as rejected; a correction marks the memory it replaces superseded, in the same
        transaction. Raises SleeptrainError if the id is already stored."""
        now = time.time()
        memory.created_at = memory.created_at or now
        memory.decision = verdict.decision
        memory.reason = "; ".join(verdict.reasons)
        memory.importance = verdict.importance
        memory.scores = dict(verdict.scores)
        memory.status = "rejected" if verdict.decision == "reject" else "pending"
        memory.supersedes = verdict.supersedes if verdict.decision == "correct" else None
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM memories WHERE id = ?", (memory.id,)).fetchone():
                raise SleeptrainError(f"memory id {memory.id!r} is already stored")
            db.execute(
                f"INSERT INTO memories ({_COLUMNS}, updated_at) VALUES ({', '.join('?' * 15)}, ?)",
                (*_row_values(memory), now),
            )
            self._log(
                db,
                memory.id,
                "decision",
                {
                    "decision": verdict.decision,
                    "importance": verdict.importance,
                    "reasons": verdict.reasons,
                    "contradicts": verdict.contradicts,
                    "supersedes": memory.supersedes,
                    "scores": verdict.scores,
                },
                now,
            )
            if memory.supersedes:
                self._set_status(db, [memory.supersedes], "superseded", {"by": memory.id}, now)
        return memory

    def mark_consolidated(self, ids: Iterable[str], adapter_version: int) -> None:
        """Mark memories as consolidated into `adapter_version`: call only once that version is fully written."""
        with self._transaction() as db:
            self._mark_consolidated(db, list(ids), adapter_version, time.time())

    def _mark_consolidated(self, db: sqlite3.Connection, ids: list[str], adapter_version: int, now: float) -> None:
        # Only pending rows change (and are logged): a memory superseded or forgotten while the sleep ran stays
        # so, and a second call for the same ids changes nothing.
        for memory_id in ids:
            changed = db.execute(
                "UPDATE memories SET status = 'consolidated', adapter_version = ?, updated_at = ? "
                "WHERE id = ? AND status = 'pending'",
                (adapter_version, now, memory_id),
            ).rowcount
            if changed:
                self._log(db, memory_id, "consolidated", {"adapter_version": adapter_version}, now)

    # ------------------------------------------------------------------------------------------ sleeps

    def begin_sleep(self, output_dir: str, version: int, memory_ids: list[str], detail: dict | None = None) -> int:
        """Record a sleep's intent before it trains; returns its id."""
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO sleeps(output_dir, version, started_at, status, memory_ids, detail) "
                "VALUES (?, ?, ?, 'started', ?, ?)",
                (output_dir, version, time.time(), json.dumps(memory_ids), json.dumps(detail or {})),
            )
            return int(cursor.lastrowid)

    def finish_sleep(self, sleep_id: int, status: str, detail: dict | None = None) -> None:
        """Close a sleep record. `done` and `recovered` also mark its memories consolidated into its version, in
        the same transaction, so a sleep is never recorded as finished with its memories still pending."""
        record = next((r for r in self.sleeps() if r.id == sleep_id), None)
        if record is None:
            raise SleeptrainError(f"no sleep with id {sleep_id}")
        now = time.time()
        merged = {**record.detail, **(detail or {})}
        with self._transaction() as db:
            if status in ("done", "recovered"):
                self._mark_consolidated(db, record.memory_ids, record.version, now)
            db.execute(
                "UPDATE sleeps SET status = ?, finished_at = ?, detail = ? WHERE id = ?",
                (status, now, json.dumps(merged, ensure_ascii=False), sleep_id),
            )

    def sleeps(self, output_dir: str | None = None, status: str | None = None) -> list[SleepRecord]:
        query = "SELECT * FROM sleeps WHERE 1 = 1"
        params: list[Any] = []
        if output_dir is not None:
            query += " AND output_dir = ?"
            params.append(output_dir)
        if status is not None:
            query += " AND status = ?"
            params.append(status)
        return [
            SleepRecord(
                r["id"],
                r["output_dir"],
                r["version"],
                r["started_at"],
                r["finished_at"],
                r["status"],
                json.loads(r["memory_ids"]),
                json.loads(r["detail"]),
            )
            for r in self._db.execute(query + " ORDER BY id", params)
        ]

    def forget(self, memory_id: str) -> Memory:
        """Mark a memory forgotten: it leaves what the model is meant to know (and sleep's replay); its row and
        audit trail stay. Raises SleeptrainError if there is no such memory."""
        memory = self.get(memory_id)
        if memory is None:
            raise SleeptrainError(f"no memory with id {memory_id!r}")
        with self._transaction() as db:
            self._set_status(db, [memory_id], "forgotten", {"was": memory.status}, time.time())
        memory.status = "forgotten"
        return memory

    def set_meta(self, key: str, value: str) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row["value"] if row else None

    def _set_status(self, db: sqlite3.Connection, ids: list[str], status: Status, detail: dict, now: float) -> None:
        for memory_id in ids:
            db.execute("UPDATE memories SET status = ?, updated_at = ? WHERE id = ?", (status, now, memory_id))
            self._log(db, memory_id, status, detail, now)

    def _log(self, db: sqlite3.Connection, memory_id: str, kind: str, detail: dict, now: float) -> None:
        db.execute(
            "INSERT INTO events(memory_id, at, kind, detail) VALUES (?, ?, ?, ?)",
            (memory_id, now, kind, json.dumps(detail, ensure_ascii=False)),
        )

    # ------------------------------------------------------------------------------------------ reading

    def get(self, memory_id: str) -> Memory | None:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM memories WHERE id = ?", (memory_id,)).fetchone()
        return _memory(row) if row else None

    def memories(self, statuses: Iterable[Status] | None = None, subject: str | None = None) -> list[Memory]:
        """Memories in the order they arrived, optionally only those with one of `statuses` or about `subject`."""
        query = f"SELECT {_COLUMNS} FROM memories WHERE 1 = 1"
        params: list[Any] = []
        if statuses is not None:
            statuses = list(statuses)
            query += f" AND status IN ({', '.join('?' * len(statuses))})"
            params.extend(statuses)
        if subject is not None:
            query += " AND subject = ?"
            params.append(subject)
        query += " ORDER BY created_at, rowid"
        return [_memory(row) for row in self._db.execute(query, params)]

    def pending(self) -> list[Memory]:
        return self.memories(["pending"])

    def consolidated(self) -> list[Memory]:
        return self.memories(["consolidated"])

    def active(self, subject: str | None = None) -> list[Memory]:
        """What the model is meant to know: pending and consolidated memories."""
        return self.memories(ACTIVE, subject)

    def events(self, memory_id: str | None = None) -> list[Event]:
        query = "SELECT seq, memory_id, at, kind, detail FROM events"
        params: tuple = ()
        if memory_id is not None:
            query += " WHERE memory_id = ?"
            params = (memory_id,)
        rows = self._db.execute(query + " ORDER BY seq", params)
        return [Event(r["seq"], r["memory_id"], r["at"], r["kind"], json.loads(r["detail"])) for r in rows]

    def counts(self) -> dict[str, int]:
        rows = self._db.execute("SELECT status, COUNT(*) AS n FROM memories GROUP BY status")
        return {row["status"]: row["n"] for row in rows}


def _row_values(memory: Memory) -> tuple:
    return (
        memory.id,
        memory.text,
        memory.question,
        memory.answer,
        memory.subject,
        memory.source,
        memory.origin,
        memory.created_at,
        memory.status,
        memory.decision,
        memory.reason,
        memory.importance,
        json.dumps(memory.scores),
        memory.supersedes,
        memory.adapter_version,
    )


def _memory(row: sqlite3.Row) -> Memory:
    return Memory(
        id=row["id"],
        text=row["text"],
        question=row["question"],
        answer=row["answer"],
        subject=row["subject"],
        source=row["source"],
        origin=row["origin"],
        created_at=row["created_at"],
        status=row["status"],
        decision=row["decision"],
        reason=row["reason"],
        importance=row["importance"],
        scores=json.loads(row["scores"]),
        supersedes=row["supersedes"],
        adapter_version=row["adapter_version"],
    )
