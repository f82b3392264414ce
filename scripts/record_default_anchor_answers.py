"""Write data/anchors/default_model_answers.json: the default model's greedy answers (fp32) to the bundled
anchor prompts, in the groups and at the length `sleeptrain.training.anchors` records them, with what they were
recorded under (training/shipped_anchors.py checks it before a run uses them). Run it again whenever the
prompts, the default model, the answer length or the grouping change.

usage: python scripts/record_default_anchor_answers.py
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from sleeptrain.config import DatasetConfig, Recipe
from sleeptrain.data.render import resolve_chat_template
from sleeptrain.models import default_model_path
from sleeptrain.training.anchors import (
    ANCHOR_BATCH,
    ANCHOR_TOKENS,
    anchor_groups,
    read_anchor_prompts,
    record_anchor_answers,
)
from sleeptrain.training.shipped_anchors import recording_conditions

OUT = Path(__file__).resolve().parent.parent / "data" / "anchors" / "default_model_answers.json"


def main() -> None:
    recipe = Recipe(datasets=[DatasetConfig(path="unused.jsonl")], output_dir="unused")  # the default template
    path = default_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    template = resolve_chat_template(tokenizer, recipe.chat_template)
    prompts = read_anchor_prompts(None)
    answers = record_anchor_answers(model, tokenizer, anchor_groups(prompts), template, recipe.system_prompt)
    conditions = recording_conditions(model, template, recipe.system_prompt, prompts, ANCHOR_TOKENS, ANCHOR_BATCH)
    shipped = {"recorded_with": conditions, "answers": {p: answers[p] for p in prompts}}
    OUT.write_text(json.dumps(shipped, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"{len(answers)} answers written to {OUT}")


if __name__ == "__main__":
    main()
