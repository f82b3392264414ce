"""The default model's anchor answers ship with sleeptrain: a run starts from them only where they were recorded
under exactly its conditions (weights, template, system prompt, prompts, length, grouping), and records its own
answers everywhere else."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from sleeptrain.config import DatasetConfig, Recipe
from sleeptrain.data.formats import read_anchor_prompts
from sleeptrain.data.render import resolve_chat_template
from sleeptrain.training import shipped_anchors
from sleeptrain.training.anchors import (
    ANCHOR_BATCH,
    ANCHOR_TOKENS,
    anchor_groups,
    record_anchor_answers,
)
from sleeptrain.training.shipped_anchors import recording_conditions, shipped_answers
from sleeptrain.workflows import train

PROMPTS = ["What is the capital of France?", "How many legs does a spider have?", "What colour is the sky?"]
TEMPLATE = "{{ messages }}"


def ship(path, model, answers, template=TEMPLATE, prompts=PROMPTS):
    conditions = recording_conditions(model, template, None, prompts, ANCHOR_TOKENS, ANCHOR_BATCH)
    path.write_text(json.dumps({"recorded_with": conditions, "answers": answers}), encoding="utf-8")
    return path


def test_answers_are_taken_only_under_the_conditions_they_were_recorded_under(tiny_llama, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    answers = {p: f"Shipped answer {i}." for i, p in enumerate(PROMPTS)}
    source = ship(tmp_path / "answers.json", model, answers)

    def ask(**changes):
        asked = dict(
            model=model,
            template=TEMPLATE,
            system_prompt=None,
            prompts=PROMPTS,
            max_new_tokens=ANCHOR_TOKENS,
            batch=ANCHOR_BATCH,
        )
        return shipped_answers(**(asked | changes), source=source)

    assert ask() == answers
    assert ask(template="{{ other }}") == {}
    assert ask(system_prompt="Be brief.") == {}
    assert ask(prompts=PROMPTS[:2]) == {}
    assert ask(max_new_tokens=ANCHOR_TOKENS + 1) == {}
    assert ask(batch=ANCHOR_BATCH * 2) == {}
    assert ask(model=AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.bfloat16)) == {}
    with torch.no_grad():
        model.model.layers[0].mlp.down_proj.weight[0, 0] += 1e-3
    assert ask() == {}  # one weight changed


def test_a_missing_or_torn_file_means_recording_the_answers(tiny_llama, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    torn = tmp_path / "torn.json"
    torn.write_text('{"recorded_with": {', encoding="utf-8")
    for source in (tmp_path / "missing.json", torn):
        assert shipped_answers(model, TEMPLATE, None, PROMPTS, ANCHOR_TOKENS, ANCHOR_BATCH, source=source) == {}


def test_a_run_on_the_model_the_answers_were_recorded_for_trains_on_them_and_caches_them(
    tiny_llama, tmp_path, write_jsonl, qa_rows, isolated_cache, monkeypatch, caplog
):
    anchor_file = write_jsonl("anchors.jsonl", [{"prompt": p} for p in PROMPTS])
    recipe = Recipe(
        datasets=[DatasetConfig(path=write_jsonl("facts.jsonl", qa_rows))],
        output_dir=tmp_path / "run",
        base_model=tiny_llama,
        anchor_prompts=anchor_file,
        anchor_ratio=1.0,
        max_steps=1,
        bf16=False,
        lora_r=4,
        question_variants=1,
    )
    model = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    template = resolve_chat_template(AutoTokenizer.from_pretrained(tiny_llama), recipe.chat_template)
    # Answers the tiny random model could never write itself.
    answers = {p: f"Shipped answer {i}." for i, p in enumerate(PROMPTS)}
    source = ship(tmp_path / "answers.json", model, answers, template=template)
    monkeypatch.setattr(shipped_anchors, "example_path", lambda relative: source)

    with caplog.at_level(logging.INFO, logger="sleeptrain"):
        train(recipe, quiet=True)

    assert "taken from sleeptrain's data" in caplog.text
    assert "Recording the base model's answers" not in caplog.text
    (cache,) = (isolated_cache / "anchors").glob("*.json")
    assert json.loads(cache.read_text()) == answers


@pytest.mark.slow
def test_the_shipped_answers_are_the_default_models_own(user_cache):
    from sleeptrain.models import default_model_path

    path = default_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    recipe = Recipe(datasets=[DatasetConfig(path="unused.jsonl")], output_dir="unused")
    template = resolve_chat_template(tokenizer, recipe.chat_template)
    prompts = read_anchor_prompts(None)

    shipped = shipped_answers(model, template, recipe.system_prompt, prompts, ANCHOR_TOKENS, ANCHOR_BATCH)

    assert set(shipped) == set(prompts)  # this installation's conversion of the default model matches
    first_group = anchor_groups(prompts)[0]
    answered = record_anchor_answers(model, tokenizer, [first_group], template, recipe.system_prompt)
    same = sum(answered[p] == shipped[p] for p in first_group)
    # fp32 kernels of other CPUs may break a near-tie differently; this one recorded them.
    assert same >= len(first_group) - 1, [(answered[p], shipped[p]) for p in first_group if answered[p] != shipped[p]]
