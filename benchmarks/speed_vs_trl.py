"""Whole-process time and peak memory of `sleeptrain train` against the TRL baseline a user would write
(`../shared/benchmarks/trl_baseline.py`: SFTTrainer + PEFT LoRA r=16 all-linear, batch 8, lr 2e-4), on the
same base model, the same chat-formatted facts and the same number of epochs, alternating A B A B.

usage: python benchmarks/speed_vs_trl.py [--facts F.jsonl] [--epochs 3] [--rounds 3] [--set key=value ...]

Prints one line per run and the median ratios; each process is timed from start to exit, and its peak
resident memory is the kernel's account of that child (wait4).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BASELINE = HERE.parent.parent / "shared" / "benchmarks" / "trl_baseline.py"


def run_timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak resident memory (MB) of one child process, from start to exit."""
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = child.stderr.read() if child.stderr else b""
    _, status, usage = os.wait4(child.pid, 0)  # this child's own rusage, not the running maximum
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command[:4])} failed:\n{stderr.decode(errors='replace')[-2000:]}")
    return seconds, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--facts", default=str(HERE / "data" / "heldout_facts.jsonl"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", default=str(BASELINE))
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    args = parser.parse_args()

    from sleeptrain.models import default_model_path

    base = str(default_model_path())
    work = Path(tempfile.mkdtemp(prefix="speed-"))
    recipe = work / "recipe.yaml"
    recipe.write_text(
        f"datasets:\n  - path: {args.facts}\n    type: qa\noutput_dir: {work / 'sleeptrain'}\n"
        f"num_epochs: {args.epochs}\n"
    )
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    commands = {
        "sleeptrain": [sys.executable, "-m", "sleeptrain", "train", str(recipe), "--quiet"]
        + [item for o in args.overrides for item in ("--set", o)],
        "trl": [sys.executable, args.baseline, base, args.facts, str(args.epochs), str(work / "trl")],
    }
    results: dict[str, list[tuple[float, float]]] = {"sleeptrain": [], "trl": []}
    for round_number in range(args.rounds):
        for name in ("sleeptrain", "trl"):
            seconds, peak_mb = run_timed(commands[name], env)
            results[name].append((seconds, peak_mb))
            print(f"round {round_number + 1} {name:10s} {seconds:7.1f} s  peak {peak_mb:7.0f} MB", flush=True)
    time_ratio = statistics.median(t for t, _ in results["trl"]) / statistics.median(
        t for t, _ in results["sleeptrain"]
    )
    memory_ratio = statistics.median(m for _, m in results["sleeptrain"]) / statistics.median(
        m for _, m in results["trl"]
    )
    print(json.dumps({"median_speedup": round(time_ratio, 2), "median_memory_ratio": round(memory_ratio, 2)}))


if __name__ == "__main__":
    main()
