"""`ingest` end to end: a real store, the local judge reading with a tiny model, broken lines skipped."""

from __future__ import annotations

from datetime import date

import pytest

from sleeptrain.config import HippocampusConfig
from sleeptrain.errors import SleeptrainError
from sleeptrain.hippocampus import MemoryStore
from sleeptrain.judges import JudgeCache
from sleeptrain.judges.local import LocalJudge
from sleeptrain.workflows.memory import forget_memory, ingest, list_memories, open_store, show_memory


def test_ingest_judges_in_order_skips_broken_lines_and_keeps_the_rest(tmp_path, write_jsonl, tiny_llama):
    path = write_jsonl(
        "memories.jsonl",
        [
            {"text": "Ada Lindqvist was born in Tromsø in 1962.", "source": "chat"},
            '{"text": "Ada plays',  # broken JSON
            {"question": "Where was Ada born?", "answer": "Oslo"},
            {"questoin": "What does Ada do?", "answer": "nurse"},  # a typo in a key
            {"text": "Correction: Ada Lindqvist was born in Bergen."},
            {"text": "ok thanks"},
        ],
    )
    cache = JudgeCache(tmp_path / "judges.sqlite")
    judge = LocalJudge(tiny_llama, cache)
    with MemoryStore(tmp_path / "m.sqlite") as store:
        results = ingest(path, store, HippocampusConfig(), judge=judge, today=date(2026, 11, 25))
        assert [r.line for r in results] == [1, 2, 3, 4, 5, 6]
        assert [r.error is not None for r in results] == [False, True, False, True, False, False]
        assert results[1].error.startswith(f"{path}:2: not valid JSON")
        assert "unknown field 'questoin' (did you mean 'question'?)" in results[3].error
        decisions = [r.verdict.decision for r in results if r.verdict]
        assert decisions == ["store", "reject", "correct", "reject"]
        first = results[0]
        assert first.verdict.scores["surprise"] > 0  # the tiny model read it
        assert results[4].verdict.supersedes == first.memory_id
        assert store.counts() == {"superseded": 1, "rejected": 2, "pending": 1}
        assert store.get(first.memory_id).origin == f"{path}:1"
        assert results[2].as_json()["contradicts"] == [first.memory_id]
    assert len(cache) >= 4  # every reading is cached for the next run


def test_list_show_forget_and_unknown_ids(tmp_path, write_jsonl):
    path = write_jsonl("m.jsonl", [{"id": "ada-1", "text": "Ada Lindqvist lives in Bergen."}])
    with open_store(tmp_path / "m.sqlite", create=True) as store:
        ingest(path, store, judge=LocalJudge(None))
        again = ingest(path, store, judge=LocalJudge(None))
        assert again[0].error == f"{path}:1: memory id 'ada-1' is already stored"
        assert [m.id for m in list_memories(store, "pending", "Ada Lindqvist")] == ["ada-1"]
        memory, events = show_memory(store, "ada-1")
        assert memory.decision == "store" and events[0].kind == "decision"
        forget_memory(store, "ada-1")
        assert list_memories(store, "forgotten")[0].id == "ada-1"
        with pytest.raises(SleeptrainError, match="no memory with id 'nope'"):
            show_memory(store, "nope")
    with pytest.raises(SleeptrainError, match="no such memory store"):
        open_store(tmp_path / "missing.sqlite")
