"""Anchor replay: the base model's own answers to general prompts, trained alongside the new facts.

Teaching a small model a few dozen facts at a high learning rate also teaches it a style (terse answers,
the new names) that leaks into questions it used to answer well. Replaying its own greedy answers to a
bundled set of general prompts pins that behaviour down at little cost (self-distillation; the same idea
as the "dreams" of generative replay). The answers are generated once per base model and template, and
cached in the settings' cache folder. Under the recipe's `anchor_distillation` an anchor teaches the base
model's whole next-token distribution along its answer, not only the greedy tokens (training/loss.py), and
`contrast_anchors` adds the facts' own questions asked about well-known people (data/augment.py). The default
model's answers to the bundled prompts ship with sleeptrain (training/shipped_anchors.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
from pathlib import Path
from typing import Any

from sleeptrain.config import Recipe
from sleeptrain.data.formats import Conversation, Message
from sleeptrain.data.render import resolve_chat_template
from sleeptrain.models.generation import generate_answers
from sleeptrain.settings import load_settings
from sleeptrain.training.shipped_anchors import sha1_text, shipped_answers

log = logging.getLogger("sleeptrain")

ANCHOR_SUBJECT = "__anchor__"
# Long enough for the first sentence or two, which carry the model's answering style; anchors are most of
# a run's tokens, so every token here costs training time.
ANCHOR_TOKENS = 48
# Answers are generated in fixed groups of the prompt file, always whole: a greedy answer depends on the
# padding of the batch it was generated in, so a prompt must always share its batch with the same prompts for
# the cache to hold the same answers whichever run filled it.
ANCHOR_BATCH = 16


def whole_sentences(answer: str) -> str:
    """An answer cut at its last full sentence: a generation stopped by the token limit must not teach the
    model to end its turns mid-sentence."""
    cut = max(answer.rfind(mark) for mark in (". ", "! ", "? ", ".\n"))
    if answer.rstrip().endswith((".", "!", "?")) or cut < 0:
        return answer.strip()
    return answer[: cut + 1].strip()


def anchor_groups(prompts: list[str]) -> list[list[str]]:
    """The prompt file in its fixed groups of ANCHOR_BATCH, each generated as one batch."""
    return [prompts[i : i + ANCHOR_BATCH] for i in range(0, len(prompts), ANCHOR_BATCH)]


def record_anchor_answers(
    model: Any,
    tokenizer: Any,
    groups: list[list[str]],
    template: str,
    system_prompt: str | None,
    progress: bool = False,
) -> dict[str, str]:
    """The model's greedy answers to each group of prompts, one batch a group, cut at their last sentence.
    `progress`: a bar for each group (about a minute in all for 120 prompts on two CPU cores)."""
    answers: dict[str, str] = {}
    for number, group in enumerate(groups, start=1):
        said = generate_answers(
            model,
            tokenizer,
            group,
            template,
            system_prompt,
            max_new_tokens=ANCHOR_TOKENS,
            batch_size=len(group),  # the group as one batch, however generate_answers would split it
            progress=f"anchor answers, group {number} of {len(groups)}" if progress else None,
        )
        answers.update((p, whole_sentences(a)) for p, a in zip(group, said, strict=True))
    return answers


def save_anchor_answers(cache_file: Path, answers: dict[str, str]) -> None:
    """Write the cache atomically. The staging file is this process's own: two processes that share a cache
    folder and record at the same time (two test workers, or two runs, each on an empty cache) would otherwise
    write one staging file, and the second to rename it would find it gone."""
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    staging = cache_file.with_name(f".{cache_file.name}.{os.getpid()}.tmp")
    staging.write_text(json.dumps(answers, ensure_ascii=False, indent=0), encoding="utf-8")
    staging.replace(cache_file)


def anchor_conversations(
    recipe: Recipe,
    prompts: list[str],
    model: Any,
    tokenizer: Any,
    model_path: str,
    count: int,
    progress: bool = False,
) -> list[Conversation]:
    """`count` anchors (prompt + the base model's own answer), generating only the answers not cached
    (`progress`: with progress bars)."""
    if count <= 0:
        return []
    from accelerate import PartialState

    # A shuffled order of the prompts, repeated when a run asks for more anchors than there are prompts
    # (one set of anchors per epoch, say): every prompt is used once before any is used twice.
    order = random.Random(recipe.seed).sample(prompts, len(prompts))
    chosen = [order[i % len(order)] for i in range(count)]
    template = resolve_chat_template(tokenizer, recipe.chat_template)
    prompt_set = sha1_text("\n".join(prompts))
    # v8: answers end at the template's end of turn as well as at the end of sequence (models/generation.py).
    key = hashlib.sha1(
        f"v8|{model_path}|{model.dtype}|{template}|{recipe.system_prompt}|{prompt_set}".encode()
    ).hexdigest()[:16]
    cache_file = load_settings().cache_dir / "anchors" / f"{key}.json"
    # Under `accelerate launch`, rank 0 generates and caches; the others then read its cache.
    with PartialState().main_process_first():
        cached = json.loads(cache_file.read_text(encoding="utf-8")) if cache_file.exists() else {}
        needed = set(chosen)
        missing = [group for group in anchor_groups(prompts) if any(p in needed and p not in cached for p in group)]
        known = len(cached)
        if missing:
            shipped = shipped_answers(model, template, recipe.system_prompt, prompts, ANCHOR_TOKENS, ANCHOR_BATCH)
            if shipped:
                log.info("The default model's answers to the bundled anchor prompts taken from sleeptrain's data")
                cached.update((p, shipped[p]) for group in missing for p in group if p in shipped)
                missing = [group for group in missing if any(p not in shipped for p in group)]
        if missing:
            log.info(
                "Recording the base model's answers to %d anchor prompts (cached for later runs)",
                sum(map(len, missing)),
            )
            from sleeptrain.training.devices import to_compute_device

            # On the GPU where there is one: Trainer would move the model there only when training starts.
            model = to_compute_device(model, recipe)
        cached.update(record_anchor_answers(model, tokenizer, missing, template, recipe.system_prompt, progress))
        if len(cached) > known:
            save_anchor_answers(cache_file, cached)
    return [
        Conversation(
            (Message("user", p), Message("assistant", cached[p])),
            ("assistant",),
            ANCHOR_SUBJECT,
            f"anchor:{i}",
            distill=True,
        )
        for i, p in enumerate(chosen)
        if cached[p].strip()
    ]
