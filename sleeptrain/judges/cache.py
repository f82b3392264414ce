"""A persistent cache of judge answers: one SQLite file, keyed by a hash of everything that went into the
question (judge, model, prompt version, the data), so that a restarted process asks nothing twice."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from sleeptrain.errors import SleeptrainError
from sleeptrain.settings import load_settings

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""


def default_cache_path() -> Path:
    return load_settings().cache_dir / "judges.sqlite"


def cache_key(*parts: Any) -> str:
    """A stable key for anything JSON can write (sorted keys, so dict order does not matter)."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class JudgeCache:
    """get/put JSON values by key. WAL and a busy timeout, so several processes can share one file."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_cache_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None)
            self._db.execute("PRAGMA busy_timeout = 30000")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise SleeptrainError(f"{self.path}: not a judge cache ({exc})") from None

    def get(self, key: str) -> Any | None:
        row = self._db.execute("SELECT value FROM answers WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, kind: str, value: Any) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO answers(key, kind, value, created_at) VALUES (?, ?, ?, ?)",
            (key, kind, json.dumps(value, ensure_ascii=False), time.time()),
        )

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]

    def close(self) -> None:
        self._db.close()
