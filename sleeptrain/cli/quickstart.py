"""`sleeptrain quickstart`: run the main job and print its summary."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape
from rich.table import Table

from sleeptrain.cli.output import console


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def run_quickstart(out: Path, quiet: bool) -> None:
    from sleeptrain.workflows.folders import make_cache_folder

    make_cache_folder()  # checked before the libraries load (~5 s on 2 cores)
    from sleeptrain.workflows import quickstart

    result = quickstart(out, quiet=quiet)
    summary = result.summary
    table = Table(title="What the model knows, before and after sleeptrain")
    table.add_column("questions")
    table.add_column("before", justify="right")
    table.add_column("after", justify="right")
    labels = {
        "direct": "facts, asked as taught",
        "paraphrase": "facts, asked in other words",
        "general": "general knowledge (must not be lost)",
    }
    for kind, label in labels.items():
        table.add_row(label, _pct(summary["before"].get(kind)), _pct(summary["after"].get(kind)))
    console.print(table)
    for row in [r for r in summary["answers"] if r["kind"] == "paraphrase"][:2]:
        console.print(
            f"[dim]asked in other words:[/] {escape(row['question'])}\n  [dim]before:[/] {escape(row['before'])}\n"
            f"  [dim]after:[/]  {escape(row['after'])}"
        )
    lost = summary["general_lost"]
    console.print(
        f"general-knowledge answers lost: {len(lost)} of {summary['general_known_before']}"
        + (f" ({escape('; '.join(lost))})" if lost else "")
    )
    train = summary["train"]
    console.print(
        f"training: {train['train_tokens']} tokens in {train['train_runtime_s']:.0f} s; "
        f"whole run {summary['total_seconds']:.0f} s"
    )
    console.print(f"adapter: {summary['adapter']}\nsummary: {result.summary_path}", markup=False, highlight=False)
