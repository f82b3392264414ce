"""`sleeptrain sleep`, run as a user runs it (a subprocess): a sleep on a tiny model, --if-needed, one-line
errors, and a sleep killed with SIGKILL in the middle of training, then run again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from peft import PeftModel
from transformers import AutoModelForCausalLM

from sleeptrain.hippocampus import Memory, MemoryStore, Verdict
from tests.cli.test_cli import cli_env, sleeptrain, sleeptrain_import_times

pytestmark = pytest.mark.timeout(180)

FACTS = [
    ("Alice", "What does Alice like?", "Alice likes green apples."),
    ("Bob", "What does Bob like?", "Bob likes red boats."),
    ("Carol", "What does Carol like?", "Carol likes blue kites."),
]


def fill_store(path: Path, facts, importance: float = 0.8) -> list[str]:
    with MemoryStore(path) as store:
        ids = []
        for subject, question, answer in facts:
            memory = Memory(store.new_id(), f"{question} {answer}", question, answer, subject)
            ids.append(store.add(memory, Verdict("store", importance, ["test"])).id)
    return ids


def write_sleep_recipe(folder: Path, base_model: str) -> Path:
    recipe = folder / "sleep.yaml"
    recipe.write_text(
        f"base_model: {base_model}\noutput_dir: run\nanchor_ratio: 0\nquestion_variants: 2\nmax_steps: 2\n"
        "micro_batch_size: 4\nbf16: false\nsleep:\n  replay_ratio: 1.0\n  pressure_threshold: 1.0\n",
        encoding="utf-8",
    )
    return recipe


def test_sleep_consolidates_and_prints_the_new_version(tiny_llama, tmp_path, isolated_cache):
    recipe = write_sleep_recipe(tmp_path, tiny_llama)
    ids = fill_store(tmp_path / "memories.db", FACTS)

    done = sleeptrain(
        "sleep", "--store", "memories.db", "--recipe", str(recipe), "-q", cwd=tmp_path, cache_dir=isolated_cache
    )

    assert done.returncode == 0, done.stderr
    assert "consolidated 3 memories (0 corrections) into v1" in done.stdout
    assert f"adapter: {Path('run') / 'adapters' / 'v1'}" in done.stdout
    assert os.readlink(tmp_path / "run" / "adapters" / "latest") == "v1"
    with MemoryStore(tmp_path / "memories.db") as store:
        assert {store.get(i).status for i in ids} == {"consolidated"}

    again = sleeptrain(
        "sleep",
        "--store",
        "memories.db",
        "--recipe",
        str(recipe),
        "--if-needed",
        cwd=tmp_path,
        cache_dir=isolated_cache,
    )
    assert again.returncode == 0 and "no sleep: no pending memories" in again.stdout


def test_a_second_sleep_in_its_own_process_replays_by_loss_and_dreams(tiny_llama, tmp_path, isolated_cache):
    # Its replay losses and dreams are the new process's first products, before any training step: on a CPU
    # that stores frozen weights in bf16 this once left buffers that training could not write to.
    recipe = write_sleep_recipe(tmp_path, tiny_llama)
    fill_store(tmp_path / "memories.db", FACTS[:2])
    args = ("sleep", "--store", "memories.db", "--recipe", str(recipe), "-q")
    assert sleeptrain(*args, cwd=tmp_path, cache_dir=isolated_cache).returncode == 0
    fill_store(tmp_path / "memories.db", FACTS[2:])

    second = sleeptrain(
        *args,
        "--set",
        "sleep.replay_ratio=0.5",  # one of the two consolidated memories: chosen by its loss
        "--set",
        "sleep.dreams=1",
        cwd=tmp_path,
        cache_dir=isolated_cache,
    )

    assert second.returncode == 0, second.stderr
    record = json.loads((tmp_path / "run" / "adapters" / "v2" / "sleep.json").read_text())
    assert len(record["replayed"]) == 1
    assert record["timings"]["replay_select_s"] > 0 and record["timings"]["dreams_s"] > 0


def test_if_needed_below_the_threshold_says_why_and_does_not_train(tiny_llama, tmp_path, isolated_cache):
    recipe = write_sleep_recipe(tmp_path, tiny_llama)
    fill_store(tmp_path / "memories.db", FACTS[:1], importance=0.3)

    done = sleeptrain(
        "sleep",
        "--store",
        "memories.db",
        "--recipe",
        str(recipe),
        "--if-needed",
        cwd=tmp_path,
        cache_dir=isolated_cache,
    )

    assert done.returncode == 0, done.stderr
    assert "no sleep: sleep pressure 0.30 from 1 pending memories is below the threshold 1.00" in done.stdout
    assert not (tmp_path / "run" / "adapters" / "latest").exists()


def test_a_train_recipes_datasets_given_to_sleep_are_named_as_unused(tiny_llama, tmp_path, isolated_cache):
    recipe = write_sleep_recipe(tmp_path, tiny_llama)
    fill_store(tmp_path / "memories.db", FACTS[:1], importance=0.3)

    done = sleeptrain(
        "sleep", "--store", "memories.db", "--recipe", str(recipe), "--if-needed", "--set", "datasets=facts.jsonl",
        "--set", "val_set_size=0.1", cwd=tmp_path, cache_dir=isolated_cache,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    said = " ".join(done.stderr.split())
    assert "datasets, val_set_size: read by `sleeptrain train` only" in said


@pytest.mark.parametrize(
    ("setup", "args", "expected"),
    [
        ("none", ["--store", "missing.db"], "error: --store missing.db: no such memory store"),
        (
            "store",
            ["--set", "sleep.replay_ration=1"],
            "unknown key 'sleep.replay_ration' (did you mean 'replay_ratio'?)",
        ),
        ("store", ["--set", "sleep.ewc_lambda=-1"], "'sleep.ewc_lambda': Input should be greater than or equal to 0"),
        ("store", ["--set", "output_dir=memories.db/run"], "output_dir memories.db/run: cannot create this folder"),
    ],
)
def test_bad_input_is_one_error_line(tiny_llama, tmp_path, isolated_cache, setup, args, expected):
    recipe = write_sleep_recipe(tmp_path, tiny_llama)
    if setup == "store":
        fill_store(tmp_path / "memories.db", FACTS[:1])
    if "--store" not in args:
        args = ["--store", "memories.db", *args]

    done = sleeptrain("sleep", "--recipe", str(recipe), *args, cwd=tmp_path, cache_dir=isolated_cache)

    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and expected in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_a_missing_store_fails_before_the_training_libraries_load(tiny_llama, tmp_path, isolated_cache):
    recipe = write_sleep_recipe(tmp_path, tiny_llama)

    done, imported = sleeptrain_import_times(
        "sleep", "--store", "missing.db", "--recipe", str(recipe), cwd=tmp_path, cache_dir=isolated_cache
    )

    assert done.returncode == 1
    assert "error: --store missing.db: no such memory store" in done.stderr
    assert "sleeptrain.config" in imported  # the recipe was read and checked first
    assert not {"torch", "peft"} & imported


def test_a_broken_anchor_prompts_file_fails_at_once_and_leaves_the_memories_pending(
    tiny_llama, tmp_path, isolated_cache
):
    recipe = write_sleep_recipe(tmp_path, tiny_llama)
    with recipe.open("a", encoding="utf-8") as handle:
        handle.write("anchor_prompts: anchors.jsonl\n")
    (tmp_path / "anchors.jsonl").write_text('{"prompt": "Hi"}\n{"prompt": "Hi",}\n', encoding="utf-8")
    fill_store(tmp_path / "memories.db", FACTS)

    done, imported = sleeptrain_import_times(
        "sleep",
        *("--store", "memories.db", "--recipe", str(recipe), "--set", "anchor_ratio=0.5"),
        cwd=tmp_path,
        cache_dir=isolated_cache,
    )

    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "anchors.jsonl:2: not valid JSON (Expecting property name" in errors[0], done.stderr
    assert not {"torch", "peft"} & imported
    with MemoryStore(tmp_path / "memories.db") as store:
        assert len(store.pending()) == 3
    assert not (tmp_path / "run").exists()


@pytest.mark.timeout(600)
def test_a_sleep_killed_mid_training_loses_nothing_and_the_next_sleep_finishes_it(tiny_llama, tmp_path, isolated_cache):
    recipe = write_sleep_recipe(tmp_path, tiny_llama)
    store_path = tmp_path / "memories.db"
    first = fill_store(store_path, FACTS[:1])
    done = sleeptrain(
        "sleep", "--store", "memories.db", "--recipe", str(recipe), "-q", cwd=tmp_path, cache_dir=isolated_cache
    )
    assert done.returncode == 0, done.stderr
    second = fill_store(store_path, FACTS[1:])
    adapters = tmp_path / "run" / "adapters"

    # A long sleep (thousands of steps), killed once its training has started.
    child = subprocess.Popen(
        [sys.executable, "-m", "sleeptrain", "sleep", "--store", "memories.db", "--recipe", str(recipe), "-q"]
        + ["--set", "max_steps=100000"],
        cwd=tmp_path,
        env=cli_env(isolated_cache),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    training_logs = tmp_path / "run" / "sleeps" / "v2" / "logs"
    staging = adapters / ".tmp-v2"
    deadline = time.monotonic() + 240  # a busy machine can take long to start a Python with torch
    while not (training_logs.is_dir() and staging.is_dir()) and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2.0)  # well into the training loop
    assert child.poll() is None, child.stderr.read().decode()
    assert training_logs.is_dir(), "the sleep did not start training within 4 minutes"
    assert staging.is_dir() and not (staging / "adapter_model.safetensors").exists()  # mid-training, not saving
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    child.stderr.close()
    assert child.returncode == -signal.SIGKILL

    # Nothing lost, nothing half-committed: v1 is still latest and loads; the new memories are still pending.
    assert os.readlink(adapters / "latest") == "v1"
    base = AutoModelForCausalLM.from_pretrained(tiny_llama)
    PeftModel.from_pretrained(base, str(adapters / "latest"))
    with MemoryStore(store_path) as store:
        assert [store.get(i).status for i in first] == ["consolidated"]
        assert [store.get(i).status for i in second] == ["pending", "pending"]
        assert [r.status for r in store.sleeps()] == ["done", "started"]

    rerun = sleeptrain(
        "sleep", "--store", "memories.db", "--recipe", str(recipe), cwd=tmp_path, cache_dir=isolated_cache
    )

    assert rerun.returncode == 0, rerun.stderr
    assert "recovered: removed .tmp-v2" in rerun.stdout
    assert "consolidated 2 memories (0 corrections) into v2" in rerun.stdout
    assert os.readlink(adapters / "latest") == "v2"
    assert sorted(p.name for p in adapters.iterdir() if not p.name.startswith(".")) == ["latest", "v1", "v2"]
    with MemoryStore(store_path) as store:
        assert {store.get(i).status for i in first + second} == {"consolidated"}
        assert [store.get(i).adapter_version for i in first + second] == [1, 2, 2]
        consolidated = [e.memory_id for e in store.events() if e.kind == "consolidated"]
        assert sorted(consolidated) == sorted(first + second)  # each memory exactly once
        assert [r.status for r in store.sleeps()] == ["done", "abandoned", "done"]
    assert json.loads((adapters / "v2" / "sleep.json").read_text())["continued_from"] == 1
    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama), str(adapters / "v1"))
