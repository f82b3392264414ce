"""Resident memory before and after every training step of `sleeptrain train`, and the peak so far: where a
run's peak memory comes from (BENCHMARKS.md, "Memory that grew with every step").

usage: python benchmarks/step_memory.py RECIPE.yaml [key=value ...]
Prints one line per step: seconds since the start, the batch's shape, memory before and after the step,
and the process's peak so far (MB).
"""

from __future__ import annotations

import resource
import sys
import time

import psutil

from sleeptrain.config import load_recipe
from sleeptrain.training import loss
from sleeptrain.workflows import train


def main() -> None:
    process = psutil.Process()
    started = time.perf_counter()
    training_step = loss.LabelledLogitsTrainer.training_step

    def measured_step(self, model, inputs, num_items_in_batch=None):  # noqa: ANN001, ANN202
        before = process.memory_info().rss / 2**20
        result = training_step(self, model, inputs, num_items_in_batch)
        after = process.memory_info().rss / 2**20
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        shape = "x".join(str(n) for n in inputs["input_ids"].shape)
        print(
            f"{time.perf_counter() - started:7.1f} s  batch {shape:>7}  before {before:6.0f}  after {after:6.0f}"
            f"  peak {peak:6.0f} MB",
            flush=True,
        )
        return result

    # Wrapping the step is the only way in from outside: Trainer has no callback between a step's forward
    # and the memory it leaves behind.
    loss.LabelledLogitsTrainer.training_step = measured_step
    train(load_recipe(sys.argv[1], sys.argv[2:]), quiet=True)


if __name__ == "__main__":
    main()
