"""How often the hippocampus decides right: runs `sleeptrain memory ingest --json` (default local judge, no
network) on a decision set fed in order, and prints accuracy, a confusion table, accuracy by kind of memory
and the number of silent contradictions stored (a contradiction without a correction cue, decided `store`).

    flock /tmp/sleeptrain-cpu.lock python benchmarks/hippocampus_decisions.py eval/hippocampus/decisions.jsonl

Each row of a decision set is a memory row plus "expected" (store | reject | correct) and "kind".
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

DECISIONS = ("store", "reject", "correct")


def run(path: Path, judge: str) -> dict:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    with tempfile.TemporaryDirectory() as folder:
        memories = Path(folder) / "memories.jsonl"
        memories.write_text(
            "".join(
                json.dumps({k: v for k, v in row.items() if k not in ("expected", "kind")}, ensure_ascii=False) + "\n"
                for row in rows
            ),
            encoding="utf-8",
        )
        command = [sys.executable, "-m", "sleeptrain", "memory", "ingest", str(memories)]
        command += ["--store", str(Path(folder) / "store.sqlite"), "--json", "--judge", judge]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"ingest failed ({done.returncode}):\n{done.stderr}")
    answers = {a["line"]: a for a in map(json.loads, done.stdout.splitlines())}
    confusion: Counter = Counter()
    by_kind: dict[str, list[bool]] = {}
    wrong, silent = [], 0
    for line, row in enumerate(rows, start=1):
        got = answers[line]["decision"]
        confusion[(row["expected"], got)] += 1
        by_kind.setdefault(row["kind"], []).append(got == row["expected"])
        if got != row["expected"]:
            wrong.append((line, row, answers[line]))
        if row["kind"] == "silent_contradiction" and got == "store":
            silent += 1
    right = sum(confusion[(d, d)] for d in DECISIONS)
    return {
        "rows": len(rows),
        "right": right,
        "accuracy": right / len(rows),
        "confusion": confusion,
        "by_kind": by_kind,
        "wrong": wrong,
        "silent_contradictions_stored": silent,
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sets", nargs="*", type=Path, default=[Path("eval/hippocampus/decisions.jsonl")])
    parser.add_argument("--judge", default="local")
    args = parser.parse_args()
    for path in args.sets:
        result = run(path, args.judge)
        print(f"\n== {path} ({result['rows']} memories, judge {args.judge}, {result['seconds']:.1f} s) ==")
        print(f"accuracy: {result['accuracy']:.3f} ({result['right']}/{result['rows']})")
        print(f"silent contradictions stored: {result['silent_contradictions_stored']}")
        print("confusion (rows: expected, columns: decided):")
        print(f"{'':>10}" + "".join(f"{d:>9}" for d in DECISIONS))
        for expected in DECISIONS:
            print(f"{expected:>10}" + "".join(f"{result['confusion'][(expected, got)]:>9}" for got in DECISIONS))
        print("by kind:")
        for kind, marks in sorted(result["by_kind"].items()):
            print(f"  {kind:<22} {sum(marks)}/{len(marks)}")
        for line, row, answer in result["wrong"]:
            shown = row.get("text") or f"{row.get('question')} {row.get('answer')}"
            print(f"  wrong at line {line}: expected {row['expected']}, got {answer['decision']}: {shown}")
            print(f"      {answer['reasons'][0]}")


if __name__ == "__main__":
    main()
