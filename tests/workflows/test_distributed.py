"""Training under a distributed launcher: two CPU processes (gloo) share one run and write one adapter.

`accelerate launch` starts GPU processes through torchrun; torchrun is also how several CPU processes are
started, so this exercises the same multi-process path without a GPU.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun is not installed")
def test_two_processes_train_one_adapter(tmp_path, tiny_llama, write_jsonl, qa_rows, isolated_cache):
    write_jsonl("facts.jsonl", qa_rows)
    (tmp_path / "recipe.yaml").write_text(
        f"base_model: {tiny_llama}\ndatasets:\n  - path: facts.jsonl\noutput_dir: run\n"
        "max_steps: 3\nmicro_batch_size: 1\nanchor_ratio: 0\nbf16: false\n"
    )
    env = {**os.environ, "SLEEPTRAIN_CACHE_DIR": str(isolated_cache), "SLEEPTRAIN_THREADS": "1", "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    done = subprocess.run(
        [*torchrun, "-m", "sleeptrain", "train", "recipe.yaml"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert done.returncode == 0, done.stdout[-1500:] + done.stderr[:1500]
    assert done.stdout.count("adapter: run/adapter") == 1  # only the main process reports
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").exists()
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["steps"] == 3 and metrics["train_tokens"] > 0


@pytest.mark.skipif(shutil.which("accelerate") is None, reason="accelerate's launcher is not installed")
def test_accelerate_launch_runs_the_same_command(tmp_path, tiny_llama, write_jsonl, qa_rows, isolated_cache):
    write_jsonl("facts.jsonl", qa_rows)
    (tmp_path / "recipe.yaml").write_text(
        f"base_model: {tiny_llama}\ndatasets:\n  - path: facts.jsonl\noutput_dir: run\n"
        "max_steps: 2\nanchor_ratio: 0\nbf16: false\n"
    )
    env = {**os.environ, "SLEEPTRAIN_CACHE_DIR": str(isolated_cache), "SLEEPTRAIN_THREADS": "1"}
    launch = [
        "accelerate",
        "launch",
        "--cpu",
        "--num_processes",
        "1",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
    ]
    done = subprocess.run(
        [*launch, "-m", "sleeptrain", "train", "recipe.yaml"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert done.returncode == 0, done.stdout[-1500:] + done.stderr[:1500]
    assert (tmp_path / "run" / "adapter" / "adapter_config.json").exists()
