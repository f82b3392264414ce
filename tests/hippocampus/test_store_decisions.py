"""The memory store as the gate uses it: WAL, the audit trail, supersede in one transaction, forget."""

from __future__ import annotations

import sqlite3

import pytest

from sleeptrain.errors import SleeptrainError
from sleeptrain.hippocampus import Memory, MemoryStore, Verdict


def test_store_is_wal_and_keeps_an_audit_trail(tmp_path):
    path = tmp_path / "m.sqlite"
    with MemoryStore(path) as store:
        old = store.add(Memory(id="m-1", text="Ada was born in Tromsø."), Verdict("store", 0.8, ["novel"]))
        new = store.add(
            Memory(id="m-2", text="Correction: Ada was born in Oslo."),
            Verdict("correct", 0.9, ["explicit correction"], ["m-1"], supersedes="m-1"),
        )
        assert store.get(old.id).status == "superseded" and store.get(new.id).status == "pending"
        assert [e.kind for e in store.events("m-1")] == ["decision", "superseded"]
        assert store.events("m-1")[1].detail == {"by": "m-2"}
        assert store.events("m-2")[0].detail["contradicts"] == ["m-1"]
        store.forget("m-2")
        assert store.get("m-2").status == "forgotten" and store.active() == []
        with pytest.raises(SleeptrainError, match="no memory with id 'm-404'"):
            store.forget("m-404")
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_failed_correction_leaves_the_old_memory_untouched(tmp_path):
    with MemoryStore(tmp_path / "m.sqlite") as store:
        store.add(Memory(id="m-1", text="Ada was born in Tromsø."), Verdict("store", 0.8, ["novel"]))
        duplicate_id = Memory(id="m-1", text="Actually, Ada was born in Oslo.")
        with pytest.raises(SleeptrainError, match="already stored"):
            store.add(duplicate_id, Verdict("correct", 0.9, ["correction"], ["m-1"], supersedes="m-1"))
        assert store.get("m-1").status == "pending"
        assert [e.kind for e in store.events("m-1")] == ["decision"]


def test_a_file_that_is_not_a_store_is_one_clear_error(tmp_path):
    bad = tmp_path / "notes.sqlite"
    bad.write_text("these are my notes, not a database\n" * 50)
    with pytest.raises(SleeptrainError, match="not a sleeptrain memory store"):
        MemoryStore(bad)
