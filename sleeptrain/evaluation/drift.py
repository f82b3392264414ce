"""Drift: how far a trained model's next-token distributions moved from its base model's on general questions.

Keyword scoring of general questions counts answers lost, but on a small model that count is mostly noise: a
base answer that is barely right ("...known as Mars. However, ...") flips with any change to the weights, and
which ones flip changes from seed to seed (BENCHMARKS.md). Drift measures the change itself: the base model
answers each question greedily, and both models read that same answer; the mean KL(base || trained) per
answer token, averaged over the questions, is 0 for an untouched model and grows with how much of the base's
behaviour training moved. It is the "locality" KL of the knowledge-editing literature, on whole answers.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch

from sleeptrain.data.render import prompt_text
from sleeptrain.models.generation import generate_answers
from sleeptrain.models.loading import inference_context


@dataclass(frozen=True)
class Drift:
    # Mean KL(base || trained) per answer token, averaged over the questions (nats).
    mean_kl: float
    # The same for each question, in the order given.
    per_question: tuple[float, ...]

    @property
    def worst(self) -> float:
        return max(self.per_question, default=0.0)


def answer_drift(
    model: Any,
    tokenizer: Any,
    questions: list[str],
    base: Any | None = None,
    template: str | None = None,
    system_prompt: str | None = None,
    max_new_tokens: int = 40,
) -> Drift:
    """The drift of `model` from `base` on `questions`. Without `base`, `model` must be a PEFT model: its base
    is the same model with the adapter off."""
    if base is None and not hasattr(model, "disable_adapter"):
        raise ValueError("answer_drift needs `base` unless `model` is a PEFT model")
    template = template or tokenizer.chat_template

    def as_base() -> AbstractContextManager:
        return model.disable_adapter() if base is None else nullcontext()

    reference = model if base is None else base
    with as_base():
        answers = generate_answers(reference, tokenizer, questions, template, system_prompt, max_new_tokens)
    per_question = []
    for question, answer in zip(questions, answers, strict=True):
        prompt = prompt_text(tokenizer, template, [{"role": "user", "content": question}], system_prompt)
        start = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        ids = tokenizer(prompt + answer, add_special_tokens=False, return_tensors="pt")["input_ids"]
        if ids.shape[1] <= start:  # an empty answer: nothing to compare
            per_question.append(0.0)
            continue
        ids = ids.to(reference.device)
        with as_base():
            expected = _answer_log_probabilities(reference, ids, start)
        trained = _answer_log_probabilities(model, ids, start)
        kl = (expected.exp() * (expected - trained)).sum(-1).mean()
        per_question.append(max(float(kl), 0.0))
    mean = sum(per_question) / len(per_question) if per_question else 0.0
    return Drift(mean, tuple(per_question))


def _answer_log_probabilities(model: Any, ids: torch.Tensor, start: int) -> torch.Tensor:
    """Log-probabilities of the next token at every position that predicts a token of the answer."""
    with inference_context(model):
        logits = model(input_ids=ids).logits[0, start - 1 : -1]
    return logits.float().log_softmax(-1)
