"""`sleeptrain memory ingest | list | show | forget`: thin wrappers over sleeptrain.workflows.memory.

Kept light at import (the app imports this module to register the sub-app): the workflows, the judges and
torch load only when a command runs."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from sleeptrain.cli.options import DebugOption
from sleeptrain.cli.output import configure_output, console, errors

memory_app = typer.Typer(
    name="memory",
    help="Judge memories on the way in (the hippocampus) and inspect the memory store.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@memory_app.callback()
def _quiet_libraries() -> None:
    # Before a command imports the workflows: bitsandbytes, imported through peft, logs a hint at import time.
    from sleeptrain.cli.app import debug_enabled

    configure_output(debug=debug_enabled(), quiet=True)


StoreOption = Annotated[Path, typer.Option("--store", help="The memory store (an SQLite file).")]
JsonOption = Annotated[bool, typer.Option("--json", help="One JSON object per line on stdout.")]


def _print_json(obj: object) -> None:
    # Plain print: rich would wrap long lines and colour them, and a JSON reader wants neither.
    print(json.dumps(obj, ensure_ascii=False), flush=True)


@memory_app.command()
def ingest(
    file: Annotated[
        Path,
        typer.Argument(
            help="Rows of {text} or {question, answer} (+ id, subject, source), in any form a data file takes."
        ),
    ],
    store: StoreOption,
    judge: Annotated[
        str | None, typer.Option("--judge", help="local (offline, the default) or gemini; overrides the recipe.")
    ] = None,
    as_json: JsonOption = False,
    recipe: Annotated[Path | None, typer.Option("--recipe", help="A recipe whose hippocampus: section to use.")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a recipe key, e.g. hippocampus.on_conflict=correct.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    debug: DebugOption = False,
) -> None:
    """Judge each memory (importance, reality, contradiction) and store it with its decision."""
    from sleeptrain.config import HippocampusConfig, load_recipe
    from sleeptrain.errors import SleeptrainError
    from sleeptrain.hippocampus.rows import read_memory_rows
    from sleeptrain.workflows.folders import make_cache_folder
    from sleeptrain.workflows.memory import ingest as ingest_file
    from sleeptrain.workflows.memory import open_store

    if judge is not None and judge not in ("local", "gemini"):
        raise SleeptrainError(f"--judge {judge!r}: choose local or gemini")
    if recipe is not None:
        loaded = load_recipe(recipe, set_ or [], require_datasets=False)
        config, base_model = loaded.hippocampus, loaded.base_model
    else:
        if set_:
            raise SleeptrainError("--set needs --recipe")
        config, base_model = HippocampusConfig(), None
    # The file read first, and the cache folder made (the judges' cache, the model that measures surprise),
    # before the store is made: a mistyped file name must not leave an empty store behind.
    rows = read_memory_rows(file)
    make_cache_folder()
    with open_store(store, create=True) as memories:
        results = ingest_file(rows, memories, config, judge_kind=judge, base_model=base_model, progress=not quiet)
        counts = memories.counts()
    broken = [r for r in results if r.error]
    for result in broken:
        errors.print(escape(result.error or ""), highlight=False, soft_wrap=True)
    if as_json:
        for result in results:
            if result.verdict is not None:
                _print_json(result.as_json())
    else:
        _print_results(results, counts)
    if broken:
        raise SleeptrainError(f"{file}: {len(broken)} broken line(s) skipped (above); the other lines were ingested")


def _print_results(results: list, counts: dict[str, int]) -> None:
    table = Table(title="What the hippocampus decided", show_lines=False)
    for column in ("line", "id", "subject", "decision", "importance", "why"):
        table.add_column(column, overflow="fold")
    colours = {"store": "green", "reject": "red", "correct": "yellow"}
    for result in results:
        if result.verdict is None:
            continue
        verdict = result.verdict
        table.add_row(
            str(result.line),
            result.memory_id,
            escape(result.subject or ""),
            f"[{colours[verdict.decision]}]{verdict.decision}[/]",
            f"{verdict.importance:.2f}",
            escape(verdict.reasons[0] if verdict.reasons else ""),
        )
    console.print(table)
    decided = [r.verdict.decision for r in results if r.verdict is not None]
    summary = ", ".join(f"{decided.count(d)} {d}" for d in ("store", "correct", "reject"))
    store_counts = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    console.print(f"{len(decided)} memories judged: {summary}; the store now holds {store_counts}", highlight=False)


@memory_app.command("list")
def list_(
    store: StoreOption,
    status: Annotated[
        str | None, typer.Option("--status", help="pending, consolidated, superseded, rejected or forgotten.")
    ] = None,
    subject: Annotated[str | None, typer.Option("--subject", help="Only memories about this subject.")] = None,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """List stored memories in the order they arrived."""
    from sleeptrain.errors import SleeptrainError
    from sleeptrain.hippocampus.memory import Status
    from sleeptrain.workflows.memory import list_memories, open_store

    valid = Status.__args__  # type: ignore[attr-defined]
    if status is not None and status not in valid:
        raise SleeptrainError(f"--status {status!r}: choose one of {', '.join(valid)}")
    with open_store(store) as memories:
        found = list_memories(memories, status, subject)  # type: ignore[arg-type]
    if as_json:
        for memory in found:
            _print_json(_memory_json(memory))
        return
    table = Table(title=f"{len(found)} memories")
    for column in ("id", "status", "decision", "subject", "importance", "text"):
        table.add_column(column, overflow="fold")
    for memory in found:
        table.add_row(
            memory.id,
            memory.status,
            memory.decision or "",
            escape(memory.subject or ""),
            f"{memory.importance:.2f}" if memory.importance is not None else "",
            escape(memory.text),
        )
    console.print(table)


@memory_app.command()
def show(
    memory_id: Annotated[str, typer.Argument(help="The memory's id.")],
    store: StoreOption,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Show one memory and its audit trail."""
    from sleeptrain.workflows.memory import open_store, show_memory

    with open_store(store) as memories:
        memory, events = show_memory(memories, memory_id)
    if as_json:
        trail = [{"at": e.at, "kind": e.kind, "detail": e.detail} for e in events]
        _print_json({**_memory_json(memory), "events": trail})
        return
    for key, value in _memory_json(memory).items():
        if value not in (None, "", {}, []):
            console.print(f"[bold]{key}[/]: {escape(str(value))}", highlight=False, soft_wrap=True)
    console.print("[bold]audit trail[/]:")
    for event in events:
        when = datetime.fromtimestamp(event.at).isoformat(timespec="seconds")
        console.print(f"  {when}  {event.kind}  {escape(json.dumps(event.detail, ensure_ascii=False))}", soft_wrap=True)


@memory_app.command()
def forget(
    memory_id: Annotated[str, typer.Argument(help="The memory's id.")], store: StoreOption, debug: DebugOption = False
) -> None:
    """Mark a memory forgotten: it leaves what the model is meant to know; its row and audit trail stay."""
    from sleeptrain.workflows.memory import forget_memory, open_store

    with open_store(store) as memories:
        memory = forget_memory(memories, memory_id)
    console.print(f"forgot {memory.id}: {escape(memory.text)}", highlight=False, soft_wrap=True)


def _memory_json(memory) -> dict:
    return {
        "id": memory.id,
        "status": memory.status,
        "decision": memory.decision,
        "subject": memory.subject,
        "text": memory.text,
        "question": memory.question,
        "answer": memory.answer,
        "source": memory.source,
        "origin": memory.origin,
        "importance": memory.importance,
        "reason": memory.reason,
        "scores": memory.scores,
        "supersedes": memory.supersedes,
        "adapter_version": memory.adapter_version,
        "created_at": memory.created_at,
    }
