"""The base model's passes over the anchors in a cold-cache `sleeptrain train`: the one that finds the
`lora_null_space` directions, and the distilled anchors' teacher pass inside the loss.

usage: python benchmarks/anchor_passes.py OUT [--epochs 3] [--facts F.jsonl]

Trains the default recipe on the facts with a fresh cache folder under OUT (the converted default model linked
into it, so that only the anchors' caches start empty), timing the loss's teacher pass
(`LabelledLogitsTrainer._distilled_positions`, wrapped) and reading the directions' time from the log. Prints
one JSON line. To compare two versions, run it from each checkout in turn (`PYTHONPATH=CHECKOUT`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--facts", default=str(HERE / "data" / "heldout_facts.jsonl"))
    args = parser.parse_args()

    from sleeptrain.models import default_model_path

    model = default_model_path()  # converted once, in the user's cache
    shutil.rmtree(args.out, ignore_errors=True)
    cache = args.out / "cache"
    (cache / "models").mkdir(parents=True)
    (cache / "models" / model.name).symlink_to(model)
    os.environ["SLEEPTRAIN_CACHE_DIR"] = str(cache)

    from sleeptrain.config import DatasetConfig, Recipe
    from sleeptrain.training.loss import LabelledLogitsTrainer
    from sleeptrain.workflows import train

    original = LabelledLogitsTrainer._distilled_positions
    teacher = {"seconds": 0.0, "calls": 0}

    def timed(self, *pass_args, **pass_kwargs):
        started = time.perf_counter()
        try:
            return original(self, *pass_args, **pass_kwargs)
        finally:
            teacher["seconds"] += time.perf_counter() - started
            teacher["calls"] += 1

    LabelledLogitsTrainer._distilled_positions = timed
    lines = _Lines()
    logger = logging.getLogger("sleeptrain")
    logger.addHandler(lines)
    logger.setLevel(logging.DEBUG)

    started = time.perf_counter()
    recipe = Recipe(
        datasets=[DatasetConfig(path=args.facts, type="qa")], output_dir=args.out / "run", num_epochs=args.epochs
    )
    train(recipe, quiet=True)
    whole = time.perf_counter() - started
    metrics = json.loads((args.out / "run" / "metrics.json").read_text())
    found = [float(m.group(1)) for line in lines.lines if (m := re.search(r"found in ([0-9.]+) s", line))]
    shared = [int(m.group(1)) for line in lines.lines if (m := re.search(r"Teacher states of (\d+)", line))]
    print(
        json.dumps(
            {
                "teacher_pass_s": round(teacher["seconds"], 1),
                "directions_s": found[0] if found else None,
                "teacher_states_from_the_directions_pass": shared[0] if shared else 0,
                "train_runtime_s": metrics["train_runtime_s"],
                "train_tokens": metrics["train_tokens"],
                "whole_train_s": round(whole, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
