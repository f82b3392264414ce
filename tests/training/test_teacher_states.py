"""The base model's states along distilled anchors are cached on disk: a second run on the same base reads
them instead of running the base model again, and trains exactly the same adapter."""

from __future__ import annotations

import logging
import os
import shutil

import pytest
import torch
from safetensors.torch import load_file

from sleeptrain.config import DatasetConfig, Recipe
from sleeptrain.training import teacher_states
from sleeptrain.training.teacher_states import (
    base_model_key,
    load_teacher_states,
    save_teacher_states,
    teacher_states_path,
)
from sleeptrain.workflows import train

PROMPTS = ["What is the capital of France?", "How many legs does a spider have?", "What colour is the sky?"]


def teacher_states_file(base_path: str, recipe, bf16: bool, device_type: str, weights_in_bf16: bool = False):
    """Where a run of these settings caches its base-model states (as train_model finds it)."""
    return teacher_states_path(base_model_key(base_path, recipe, bf16, device_type, weights_in_bf16))


@pytest.fixture
def distilling_recipe(tmp_path, write_jsonl, qa_rows, isolated_cache):
    facts = write_jsonl("facts.jsonl", qa_rows)
    anchors = write_jsonl("anchors.jsonl", [{"prompt": p} for p in PROMPTS])

    def make(base_model: str, output: str, **keys) -> Recipe:
        settings = dict(
            max_steps=4,
            bf16=False,
            lora_r=4,
            question_variants=1,
            anchor_ratio=1.0,
            anchor_prompts=anchors,
            anchor_distillation=True,
            micro_batch_size=4,
        )
        return Recipe(
            datasets=[DatasetConfig(path=facts)],
            output_dir=tmp_path / output,
            base_model=base_model,
            **(settings | keys),
        )

    return make


def cached_files(cache) -> list:
    return sorted((cache / "teacher").glob("*.pt"))


def test_a_second_run_reads_the_states_and_trains_the_same_adapter(
    tiny_llama, distilling_recipe, isolated_cache, caplog
):
    first = train(distilling_recipe(tiny_llama, "first"), quiet=True)
    [states_file] = cached_files(isolated_cache)
    assert len(load_teacher_states(states_file, torch.device("cpu"))) == len(PROMPTS)

    with caplog.at_level(logging.INFO, logger="sleeptrain"):
        second = train(distilling_recipe(tiny_llama, "second"), quiet=True)

    assert f"Cached base-model states for {len(PROMPTS)} anchors loaded from {states_file}" in caplog.text
    # Every anchor was found by its tokens: the base model computed nothing new to add.
    assert len(load_teacher_states(states_file, torch.device("cpu"))) == len(PROMPTS)
    one = load_file(first.adapter_dir / "adapter_model.safetensors")
    two = load_file(second.adapter_dir / "adapter_model.safetensors")
    assert one.keys() == two.keys()
    assert all(torch.equal(one[name], two[name]) for name in one)  # the cached states are the computed ones


def test_the_cache_belongs_to_the_model_files_and_how_the_run_computes(tiny_llama, distilling_recipe, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_llama, model)
    recipe = distilling_recipe(str(model), "run")
    here = teacher_states_file(str(model), recipe, False, "cpu")

    assert here == teacher_states_file(str(model), recipe, False, "cpu")
    assert here != teacher_states_file(str(model), recipe, True, "cpu")  # bf16
    assert here != teacher_states_file(str(model), recipe, False, "cpu", True)  # fp32 on bf16-stored weights
    assert here != teacher_states_file(str(model), recipe, False, "cuda")
    on_gpu = base_model_key(str(model), recipe, False, "cuda")
    assert "fp16" not in on_gpu  # fp32 runs keep the keys (and caches) they had before fp16 existed
    assert base_model_key(str(model), recipe, False, "cuda", fp16=True) == on_gpu | {"fp16": True}
    assert here != teacher_states_file(str(model), recipe.model_copy(update={"adapter": "qlora"}), False, "cpu")
    weights = next(model.glob("*.safetensors"))
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 1_000_000_000))
    assert here != teacher_states_file(str(model), recipe, False, "cpu")  # the weights were rewritten
    assert teacher_states_file("HuggingFaceTB/SmolLM2-135M-Instruct", recipe, False, "cpu") is None  # a hub id


def test_an_unreadable_cache_is_ignored_and_rewritten(tiny_llama, distilling_recipe, isolated_cache):
    recipe = distilling_recipe(tiny_llama, "run")
    # An fp32 LoRA run on a CPU stores its frozen weights in bf16 (bf16_storage: auto).
    states_file = teacher_states_file(tiny_llama, recipe, False, "cpu", True)
    states_file.parent.mkdir(parents=True)
    states_file.write_bytes(b"half a file")

    train(recipe, quiet=True)

    assert len(load_teacher_states(states_file, torch.device("cpu"))) == len(PROMPTS)


def test_past_its_size_the_cache_keeps_the_most_recently_used(tmp_path, monkeypatch):
    monkeypatch.setattr(teacher_states, "MOST_BYTES", 2 * 4 * 4)  # two states of four fp32 numbers
    states = {(1,): torch.zeros(4), (2,): torch.ones(4), (3,): torch.full((4,), 3.0)}
    path = tmp_path / "states.pt"

    save_teacher_states(path, states)

    kept = load_teacher_states(path, torch.device("cpu"))
    assert list(kept) == [(2,), (3,)]
    assert torch.equal(kept[(3,)], torch.full((4,), 3.0))


def test_a_run_without_anchors_neither_reads_nor_writes_the_cache(
    tiny_llama, distilling_recipe, isolated_cache, caplog
):
    train(distilling_recipe(tiny_llama, "first"), quiet=True)

    with caplog.at_level(logging.INFO, logger="sleeptrain"):
        train(distilling_recipe(tiny_llama, "no-anchors", anchor_ratio=0), quiet=True)

    assert "Cached base-model states" not in caplog.text
    [states_file] = cached_files(isolated_cache)
    assert len(load_teacher_states(states_file, torch.device("cpu"))) == len(PROMPTS)
