"""Dreams (generative replay): the current model's own answers to questions about earlier subjects, trained
alongside the new memories so that what it says about them now is what it keeps saying.

Unlike replay, a dream needs no stored answer: it rehearses whatever the adapter currently does, the way
anchors rehearse the base model's general answers. The questions are those of consolidated memories and
"What do you know about X?" for their subjects, taken round-robin across subjects so that every earlier
subject gets dreamt about.
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

from sleeptrain.config import Recipe
from sleeptrain.data.formats import Conversation, Message
from sleeptrain.data.render import resolve_chat_template
from sleeptrain.hippocampus.memory import Memory
from sleeptrain.models.generation import generate_answers
from sleeptrain.training.anchors import whole_sentences

DREAM_TOKENS = 48


def dream_prompts(consolidated: list[Memory], count: int, seed: int) -> list[tuple[str, str | None]]:
    """Up to `count` (question, subject) pairs about earlier memories, round-robin across subjects."""
    by_subject: dict[str | None, list[str]] = defaultdict(list)
    for memory in consolidated:
        if memory.is_fact:
            by_subject[memory.subject].append(memory.question or "")
    rng = random.Random(seed)
    queues = []
    for subject, questions in by_subject.items():
        asked = list(dict.fromkeys(questions))
        rng.shuffle(asked)
        if subject:
            asked.insert(0, f"What do you know about {subject}?")
        queues.append([(q, subject) for q in asked])
    rng.shuffle(queues)
    prompts: list[tuple[str, str | None]] = []
    while len(prompts) < count and any(queues):
        for queue in queues:
            if queue and len(prompts) < count:
                prompts.append(queue.pop(0))
    return prompts


def dream_conversations(
    model: Any,
    tokenizer: Any,
    recipe: Recipe,
    consolidated: list[Memory],
    count: int,
    seed: int,
    progress: bool = False,
) -> list[Conversation]:
    """`count` dreams: prompts about earlier subjects with the model's own greedy answers (cut at a sentence),
    under a progress bar where `progress`."""
    prompts = dream_prompts(consolidated, count, seed)
    if not prompts:
        return []
    template = resolve_chat_template(tokenizer, recipe.chat_template)
    was_training = model.training
    model.eval()
    try:
        answers = generate_answers(
            model,
            tokenizer,
            [q for q, _ in prompts],
            template,
            recipe.system_prompt,
            max_new_tokens=DREAM_TOKENS,
            progress="dreaming" if progress else None,
        )
    finally:
        model.train(was_training)
    return [
        Conversation(
            (Message("user", question), Message("assistant", whole_sentences(answer))),
            ("assistant",),
            subject,
            f"dream:{index}",
        )
        for index, ((question, subject), answer) in enumerate(zip(prompts, answers, strict=True))
        if whole_sentences(answer)
    ]
