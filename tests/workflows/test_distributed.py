"""Training under a launcher: `accelerate launch -m sleeptrain train` and two CPU processes (gloo) that
share one run and write one adapter.

`accelerate launch` starts GPU processes through torchrun; torchrun is also how several CPU processes are
started (accelerate starts those only through MPI), so this exercises the multi-process path without a GPU.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TORCHRUN_TWO_CPUS = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
ACCELERATE_ONE_CPU = ["accelerate", "launch", "--cpu", "--num_processes", "1", "--num_machines", "1",
                      "--mixed_precision", "no", "--dynamo_backend", "no"]  # fmt: skip


def launch_training(launcher: list[str], folder: Path, base_model: str, cache: Path, extra: str):
    """Write a tiny recipe in folder and run `LAUNCHER -m sleeptrain train recipe.yaml` there."""
    (folder / "recipe.yaml").write_text(
        f"base_model: {base_model}\ndatasets:\n  - path: facts.jsonl\noutput_dir: run\n"
        f"anchor_ratio: 0\nbf16: false\n{extra}"
    )
    env = {**os.environ, "SLEEPTRAIN_CACHE_DIR": str(cache), "SLEEPTRAIN_THREADS": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*launcher, "-m", "sleeptrain", "train", "recipe.yaml"], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stdout[-1500:] + done.stderr[:1500]
    return done


def test_two_processes_train_one_adapter(tmp_path, tiny_llama, write_jsonl, qa_rows, isolated_cache):
    write_jsonl("facts.jsonl", qa_rows)

    done = launch_training(
        TORCHRUN_TWO_CPUS, tmp_path, tiny_llama, isolated_cache, "max_steps: 3\nmicro_batch_size: 1\n"
    )

    assert done.stdout.count("adapter: run/adapter") == 1  # only the main process reports
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").exists()
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["steps"] == 3 and metrics["train_tokens"] > 0
    # One TensorBoard run, written by the main process alone.
    assert len(list((tmp_path / "run" / "logs").iterdir())) == 1


@pytest.mark.skipif(shutil.which("accelerate") is None, reason="accelerate's launcher is not installed")
def test_accelerate_launch_runs_the_same_command(tmp_path, tiny_llama, write_jsonl, qa_rows, isolated_cache):
    write_jsonl("facts.jsonl", qa_rows)

    launch_training(ACCELERATE_ONE_CPU, tmp_path, tiny_llama, isolated_cache, "max_steps: 2\n")

    assert (tmp_path / "run" / "adapter" / "adapter_config.json").exists()
