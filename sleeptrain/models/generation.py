"""Greedy answers from a model through the chat template: what evaluation asks and what anchor replay
records. Batched with left padding, so every row continues from its own last token."""

from __future__ import annotations

import math
from typing import Any

from sleeptrain.data.render import end_of_turn_token, prompt_text
from sleeptrain.models.loading import inference_context, name_a_padding_token
from sleeptrain.progress import progress_bar


def generate_answers(
    model: Any,
    tokenizer: Any,
    questions: list[str],
    template: str | None = None,
    system_prompt: str | None = None,
    max_new_tokens: int = 40,
    batch_size: int = 64,
    progress: str | None = None,
) -> list[str]:
    """One greedy answer per question, each asked as a fresh single-turn chat. Large batches: on a CPU a decoding
    step of a small model costs about as much at 16 rows as at 40 (the quickstart's 74 questions took 54 s in
    batches of 16, 34 s of 40 and 25 s in one; BENCHMARKS.md, sixteenth session). `progress`: the label of a
    progress bar over the decoding steps (none without it)."""
    if not questions:
        return []
    template = template or tokenizer.chat_template
    prompts = [prompt_text(tokenizer, template, [{"role": "user", "content": q}], system_prompt) for q in questions]
    stops = [token for token in dict.fromkeys(_stop_tokens(model, tokenizer, template)) if token is not None]
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    name_a_padding_token(tokenizer)
    answers: list[str] = []
    # Batches of even size: 74 questions as 37 + 37, not 64 + 10.
    size = math.ceil(len(prompts) / math.ceil(len(prompts) / batch_size))
    bar = progress_bar(label=progress, total=math.ceil(len(prompts) / size) * max_new_tokens, unit="step")
    try:
        for start in range(0, len(prompts), size):
            batch = tokenizer(
                prompts[start : start + size], return_tensors="pt", padding=True, add_special_tokens=False
            ).to(model.device)
            with inference_context(model):
                # Only the ids and their mask: some tokenizers also return token_type_ids, which a causal
                # language model's generate() refuses.
                output = model.generate(
                    input_ids=batch["input_ids"],
                    attention_mask=batch["attention_mask"],
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=stops or None,
                    stopping_criteria=_advancing(bar) if progress else None,
                )
            # A batch whose every row ended early skips its remaining steps.
            bar.update((start // size + 1) * max_new_tokens - bar.n)
            new_tokens = output[:, batch["input_ids"].shape[1] :]
            answers.extend(text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True))
    finally:
        tokenizer.padding_side = side
        bar.close()
    return answers


def _stop_tokens(model: Any, tokenizer: Any, template: str) -> list[int | None]:
    """Where an answer ends: the tokenizer's end of sequence, the template's end of turn (end_of_turn_token),
    and those the model's generation config names (Phi-3 and Llama 3 instruct models list several)."""
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    configured = configured if isinstance(configured, list) else [configured]
    return [tokenizer.eos_token_id, end_of_turn_token(tokenizer, template), *configured]


def _advancing(bar: Any) -> Any:
    """A stopping criterion that never stops and advances `bar` once per decoding step: the one hook generate()
    calls at every step for any batch size (its streamers take one row)."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class AdvanceBar(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            bar.update(1)
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([AdvanceBar()])
