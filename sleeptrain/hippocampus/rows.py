"""Reading memory files: rows of {"text"} or {"question", "answer"}, with optional "id", "subject", "source"
and "timestamp", in JSON Lines or any other format sleeptrain/records.py reads. A broken row becomes an error
naming FILE:LINE, and the other rows still count."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from sleeptrain.errors import SleeptrainError
from sleeptrain.hippocampus.memory import Memory
from sleeptrain.records import Record, read_records

FIELDS = ("id", "text", "question", "answer", "subject", "source", "timestamp")


@dataclass
class MemoryRow:
    line: int  # the line the row starts on; a Parquet or Arrow row's number
    where: str  # FILE:LINE, or FILE row N
    memory: Memory | None  # None for a broken line
    error: str | None = None


def read_memory_rows(path: str | Path) -> list[MemoryRow]:
    """Every row of a memory file, parsed; raises SleeptrainError only if the file cannot be read."""
    path = Path(path)
    if not path.exists():
        raise SleeptrainError(f"{path}: no such memory file")
    if path.is_dir():
        raise SleeptrainError(f"{path}: is a folder, not a memory file")
    rows = []
    for record in read_records(path):
        try:
            rows.append(MemoryRow(record.number, record.where, _parse(record)))
        except SleeptrainError as exc:
            rows.append(MemoryRow(record.number, record.where, None, str(exc)))
    return rows


def _parse(record: Record) -> Memory:
    row, where = record.object(), record.where
    for key in row:
        if key not in FIELDS:
            guess = difflib.get_close_matches(key, FIELDS, n=1)
            hint = f" (did you mean '{guess[0]}'?)" if guess else f" (known fields: {', '.join(FIELDS)})"
            raise SleeptrainError(f"{where}: unknown field '{key}'{hint}")
    values = {key: _string(row, key, where) for key in FIELDS if key != "timestamp"}
    text, question, answer = values["text"], values["question"], values["answer"]
    if text is not None and (question is not None or answer is not None):
        raise SleeptrainError(f"{where}: give either 'text' or 'question' and 'answer', not both")
    if text is None:
        if question is None or answer is None:
            missing = "answer" if question is not None else "question" if answer is not None else "text"
            raise SleeptrainError(f"{where}: missing field '{missing}'")
        question, answer = question.strip(), answer.strip()
        text = f"{question} {answer}"
    created = _number(row.get("timestamp"))
    if created is not None and not isinstance(created, int | float):
        raise SleeptrainError(f"{where}: field 'timestamp' must be unix seconds (a number)")
    return Memory(
        id=(values["id"] or "").strip(),
        text=text.strip(),
        question=question,
        answer=answer,
        subject=(values["subject"] or "").strip() or None,
        source=values["source"],
        origin=where,
        created_at=float(created or 0.0),
    )


def _number(value: object) -> object:
    """A CSV file's cells are all text: "1733900000" there is the number it spells."""
    try:
        return float(value) if isinstance(value, str) else value
    except ValueError:
        return value


def _string(row: dict, key: str, where: str) -> str | None:
    value = row.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise SleeptrainError(f"{where}: field '{key}' must be a string, got {type(value).__name__}")
    if not value.strip():
        raise SleeptrainError(f"{where}: field '{key}' is empty")
    return value
