"""The `memory` workflows: ingest a memory file through the hippocampus into a store, and list, show or
forget stored memories. The CLI, the notebooks and the tests all call these."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from sleeptrain.config import HippocampusConfig, Recipe
from sleeptrain.errors import SleeptrainError
from sleeptrain.hippocampus.gate import decide
from sleeptrain.hippocampus.memory import Memory, Status, Verdict
from sleeptrain.hippocampus.rows import MemoryRow, read_memory_rows
from sleeptrain.hippocampus.store import Event, MemoryStore
from sleeptrain.judges import Judge, make_judge
from sleeptrain.progress import progress_bar


@dataclass
class IngestResult:
    """What happened to one line of the memory file: a verdict, or the error that made it skipped."""

    line: int
    where: str
    memory_id: str | None = None
    subject: str | None = None
    verdict: Verdict | None = None
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        if self.verdict is None:
            return {"line": self.line, "error": self.error}
        return {
            "line": self.line,
            "id": self.memory_id,
            "decision": self.verdict.decision,
            "importance": self.verdict.importance,
            "reasons": self.verdict.reasons,
            "contradicts": self.verdict.contradicts,
            "supersedes": self.verdict.supersedes,
            "subject": self.subject,
        }


@dataclass
class IngestReport:
    results: list[IngestResult] = field(default_factory=list)

    @property
    def errors(self) -> list[IngestResult]:
        return [r for r in self.results if r.error is not None]


def ingest(
    path: str | Path | list[MemoryRow],
    store: MemoryStore,
    config: HippocampusConfig | Recipe | None = None,
    judge: Judge | None = None,
    today: date | None = None,
    judge_kind: str | None = None,
    base_model: str | None = None,
    progress: bool = False,
) -> list[IngestResult]:
    """Judge every memory of a memory file (or its rows, as read_memory_rows read them) in order and store it
    with its decision. A broken line is a result
    with `error` set (and nothing stored for it); the other lines go on. Each memory is stored in its own
    transaction, so an interruption keeps everything judged before it. Without `judge`, the one `judge_kind`
    (or the config) names is built, reading with `base_model` (or the recipe's) - only once the file is read.
    `progress`: a bar over the memories judged."""
    if isinstance(config, Recipe):
        base_model, config = config.base_model, config.hippocampus
    config = config or HippocampusConfig()
    rows = path if isinstance(path, list) else read_memory_rows(path)
    if judge is None and any(row.memory is not None for row in rows):
        judge = make_judge(config, base_model, kind=judge_kind)
    today = today or date.today()
    results, context = [], None
    for row in progress_bar(rows, label="judging memories" if progress else None, unit="memory"):
        result = IngestResult(row.line, row.where, error=row.error)
        results.append(result)
        memory = row.memory
        if memory is None:
            continue
        if not memory.id:
            memory.id = store.new_id()
        elif store.get(memory.id) is not None:
            result.error = f"{row.where}: memory id {memory.id!r} is already stored"
            continue
        verdict = decide(memory, store, judge, config, today, context)
        store.add(memory, verdict)
        result.memory_id, result.subject, result.verdict = memory.id, memory.subject, verdict
        context = memory.subject or context
    return results


def open_store(path: str | Path, create: bool = False) -> MemoryStore:
    """The store at `path`; unless `create`, a missing file is an error (a typo must not make a new store)."""
    path = Path(path)
    if not create and not path.exists():
        raise SleeptrainError(f"{path}: no such memory store")
    return MemoryStore(path)


def list_memories(store: MemoryStore, status: Status | None = None, subject: str | None = None) -> list[Memory]:
    return store.memories([status] if status else None, subject)


def show_memory(store: MemoryStore, memory_id: str) -> tuple[Memory, list[Event]]:
    memory = store.get(memory_id)
    if memory is None:
        raise SleeptrainError(f"{store.path}: no memory with id {memory_id!r}")
    return memory, store.events(memory_id)


def forget_memory(store: MemoryStore, memory_id: str) -> Memory:
    if store.get(memory_id) is None:
        raise SleeptrainError(f"{store.path}: no memory with id {memory_id!r}")
    return store.forget(memory_id)
