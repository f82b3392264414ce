"""Drift: KL(base || trained) along the base model's own answers to general questions."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

from sleeptrain.evaluation import answer_drift

QUESTIONS = ["What is the capital of France?", "How many legs does a spider have?"]


def _adapted(model_dir: str):
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    return get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))


def test_a_new_adapter_has_not_moved_the_model(tiny_llama):
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    drift = answer_drift(_adapted(tiny_llama), tokenizer, QUESTIONS, max_new_tokens=6)
    assert drift.mean_kl == pytest.approx(0.0, abs=1e-6)  # LoRA's B starts at zero
    assert len(drift.per_question) == len(QUESTIONS)


def test_drift_grows_with_how_far_the_adapter_moved(tiny_llama):
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    torch.manual_seed(0)
    model = _adapted(tiny_llama)
    directions = {name: torch.randn_like(weight) for name, weight in model.named_parameters() if "lora_B" in name}
    drifts = []
    for scale in (0.05, 0.5):  # the same direction, ten times as far
        with torch.no_grad():
            for name, weight in model.named_parameters():
                if name in directions:
                    weight.copy_(directions[name] * scale)
        drifts.append(answer_drift(model, tokenizer, QUESTIONS, max_new_tokens=6))
    assert 0 < drifts[0].mean_kl < drifts[1].mean_kl
    assert drifts[1].worst >= drifts[1].mean_kl


def test_a_merged_model_is_compared_with_the_base_it_is_given(tiny_llama):
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    base = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    same = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    assert answer_drift(same, tokenizer, QUESTIONS, base=base, max_new_tokens=6).mean_kl == pytest.approx(0.0)
    with torch.no_grad():
        same.lm_head.weight.add_(torch.randn_like(same.lm_head.weight))
    assert answer_drift(same, tokenizer, QUESTIONS, base=base, max_new_tokens=6).mean_kl > 0.01
    with pytest.raises(ValueError, match="needs `base`"):
        answer_drift(same, tokenizer, QUESTIONS)
