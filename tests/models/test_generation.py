"""Greedy answers through the chat template, batched with left padding."""

from __future__ import annotations

from transformers import AutoModelForCausalLM, AutoTokenizer

from sleeptrain.models import generate_answers


def test_a_tokenizer_that_also_returns_token_type_ids_still_gets_answers(tiny_llama):
    # Some tokenizers hand back token_type_ids beside the ids and mask; a causal LM's generate() refuses them.
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    tokenizer.model_input_names = ["input_ids", "token_type_ids", "attention_mask"]
    assert "token_type_ids" in tokenizer("Where is Oslo?")
    model = AutoModelForCausalLM.from_pretrained(tiny_llama)

    answers = generate_answers(model, tokenizer, ["Where is Oslo?", "Who wrote it?"], max_new_tokens=3)

    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
    assert tokenizer.padding_side == "right"  # put back as it was
