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
    assert " ".join(done.stderr.split()).count("INFO Loaded ") == 1  # and logs
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").exists()
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["steps"] == 3 and metrics["train_tokens"] > 0
    # One TensorBoard run, written by the main process alone.
    assert len(list((tmp_path / "run" / "logs").iterdir())) == 1
    # Every LoRA weight is used in every step: DDP is not asked to search for unused ones (and warn).
    assert "find_unused_parameters" not in done.stderr


@pytest.mark.parametrize(
    "asked",
    [
        "fsdp: full_shard auto_wrap\n",
        # Axolotl's newer form: the settings alone turn FSDP on.
        "fsdp_version: 2\nfsdp_config:\n  transformer_layer_cls_to_wrap: LlamaDecoderLayer\n",
    ],
)
def test_fsdp_asked_of_cpu_processes_says_it_is_not_applied(
    tmp_path, tiny_llama, write_jsonl, qa_rows, isolated_cache, asked
):
    write_jsonl("facts.jsonl", qa_rows)

    done = launch_training(
        TORCHRUN_TWO_CPUS, tmp_path, tiny_llama, isolated_cache, "max_steps: 2\nmicro_batch_size: 1\n" + asked
    )

    said = " ".join(done.stderr.split())
    assert said.count("fsdp: not applied (accelerate shards on GPUs only): every process holds the whole model") == 1
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").exists()


@pytest.mark.skipif(shutil.which("accelerate") is None, reason="accelerate's launcher is not installed")
def test_accelerate_launch_runs_the_same_command(tmp_path, tiny_llama, write_jsonl, qa_rows, isolated_cache):
    write_jsonl("facts.jsonl", qa_rows)

    launch_training(ACCELERATE_ONE_CPU, tmp_path, tiny_llama, isolated_cache, "max_steps: 2\n")

    assert (tmp_path / "run" / "adapter" / "adapter_config.json").exists()


def test_batches_shorter_than_the_micro_batch_are_all_trained(
    tmp_path, tiny_llama, write_jsonl, qa_rows, isolated_cache
):
    # Three facts in batches of two: each epoch a full batch and one of a single fact. accelerate's sharding
    # kept a batch only where every process's was full, so the short ones and their partners were dropped (and
    # with batches of eight, one process trained nothing and the other waited for it until its peer was gone).
    write_jsonl("facts.jsonl", qa_rows)

    launch_training(
        TORCHRUN_TWO_CPUS, tmp_path, tiny_llama, isolated_cache, "num_epochs: 2\nmicro_batch_size: 2\nlearnt_after: 0\n"
    )

    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["steps"] == 2  # four batches, two for each process


def test_two_processes_go_on_from_a_checkpoint_to_the_same_adapter(
    tmp_path, tiny_llama, write_jsonl, qa_rows, isolated_cache
):
    import torch
    from safetensors.torch import load_file

    write_jsonl("facts.jsonl", qa_rows)
    keys = "num_epochs: 4\nmicro_batch_size: 1\nlearnt_after: 0\nsave_steps: 2\n"
    launch_training(TORCHRUN_TWO_CPUS, tmp_path, tiny_llama, isolated_cache, keys)
    whole = load_file(str(tmp_path / "run" / "adapter" / "adapter_model.safetensors"))

    # Twelve batches dealt to two processes: six steps, checkpoints at 2, 4 and 6; going on from the first.
    launch_training(
        TORCHRUN_TWO_CPUS,
        tmp_path,
        tiny_llama,
        isolated_cache,
        keys + "resume_from_checkpoint: run/checkpoints/checkpoint-2\n",
    )

    resumed = load_file(str(tmp_path / "run" / "adapter" / "adapter_model.safetensors"))
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["steps"] == 6
    assert all(torch.allclose(whole[name], resumed[name], atol=1e-6) for name in whole)
