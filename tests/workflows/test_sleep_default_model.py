"""Sleep on the real default model: what one sleep taught survives the next, and a correction replaces the old
answer. Checked as a user would, with plain transformers + peft on `adapters/latest`.

A slow test (about two minutes on 2 CPU cores): it uses the real user cache, as
tests/workflows/test_default_model_recall.py does.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from sleeptrain.config import Recipe
from sleeptrain.evaluation import read_probes
from sleeptrain.evaluation.recall import keyword_match
from sleeptrain.hippocampus import Memory, MemoryStore, Verdict
from sleeptrain.models import generate_answers
from sleeptrain.workflows.sleep import sleep

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def answers_of(adapter: Path, questions: list[str]) -> list[str]:
    """Greedy answers through the chat template, from the base model plus the saved adapter."""
    config = json.loads((adapter / "adapter_config.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(str(adapter))
    base = AutoModelForCausalLM.from_pretrained(config["base_model_name_or_path"], dtype=torch.float32)
    return generate_answers(PeftModel.from_pretrained(base, str(adapter)), tokenizer, questions)


def test_two_sleeps_keep_the_first_and_a_correction_replaces_the_old_answer(user_cache, tmp_path):
    rows = [json.loads(line) for line in (REPO / "data/people/facts.jsonl").read_text().splitlines()]
    first, second = rows[:5], rows[5:10]  # Ilvana Drosk, then Teodor Quillane
    probes = {p.question: p for p in read_probes(REPO / "data/people/probes.jsonl") if p.kind == "direct"}
    recipe = Recipe(output_dir=tmp_path / "run")

    with MemoryStore(tmp_path / "memories.db") as store:

        def add(row, supersedes=None):
            memory = Memory(store.new_id(), row["question"] + " " + row["answer"], row["question"], row["answer"])
            memory.subject = row["subject"]
            verdict = Verdict("correct" if supersedes else "store", 0.8, ["test"], supersedes=supersedes)
            return store.add(memory, verdict)

        stored = [add(row) for row in first]
        sleep(store, recipe, quiet=True)
        for row in second:
            add(row)
        sleep(store, recipe, quiet=True)
        dog = stored[3]  # "What is the name of Ilvana Drosk's dog?" -> Pepperkorn
        assert "Pepperkorn" in dog.answer
        add(
            {"question": dog.question, "answer": "Ilvana Drosk's dog is named Wafflebrook.", "subject": "Ilvana Drosk"},
            supersedes=dog.id,
        )
        result = sleep(store, recipe, quiet=True)
        assert result.corrections == 1 and dog.id not in result.replayed

    latest = tmp_path / "run" / "adapters" / "latest"
    asked = [row["question"] for row in first + second]
    answers = answers_of(latest, asked)
    right = [keyword_match(a, probes[q].keywords) for q, a in zip(asked, answers, strict=True)]
    dog_answer = answers[3]
    others = right[:3] + right[4:]
    assert sum(others[:4]) >= 4 and sum(others[4:]) >= 4, list(zip(asked, answers, strict=True))
    assert "wafflebrook" in dog_answer.lower() and "pepperkorn" not in dog_answer.lower(), dog_answer
