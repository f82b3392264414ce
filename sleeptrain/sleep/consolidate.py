"""What one sleep trains on: the pending memories (with the recipe's question variants), their subjects'
summaries, corrections, and a replay of consolidated memories, all as Conversations for data/render.

- A new fact is trained as the recipe's `train` trains a QA row: the question in `question_variants`
  wordings, plus a "What do you know about X?" summary of X's facts. The summary is built from every active
  fact about X (consolidated ones too, never a superseded one), so a sleep does not teach a summary that
  leaves out what X's earlier facts said.
- A correction is trained like a new fact, and also on the superseded memory's question if it was worded
  differently, so that neither wording keeps the old answer. The superseded memory is not active, so it is
  never replayed or summarised again.
- Replay: `replay_ratio` consolidated memories per new memory (by default up to 4, so in practice all of
  them), each in `replay_variants` wordings (1 by default), plus one summary per replayed subject
  (`replay_summaries`). They are already learnt, so one rehearsal per sleep keeps most of them for about a
  sixth of what learning them cost; a memory left out of a sleep is largely forgotten in it, which is why
  replaying a sample (even the worst-answered) did worse than replaying all cheaply (BENCHMARKS.md,
  "Sleep"). Which ones, when not all: those the current adapter answers worst (the loss of its answer, one
  forward pass each), or random.
- Check and repair: after training, every active memory is checked with one forward pass (does the adapter
  still write its stored answer, token for token?); the ones it does not are listed in the version's
  sleep.json. `repair_rounds` trains them again in a short extra round with anchors; measured, that round
  disturbs the rest more than it mends, so it is off by default.
- A memory without a question (free text) is trained as the answer to "What do you remember about X?" when
  it has a subject, else as text in a user turn (loss on the text itself), the way interviews are learnt.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from sleeptrain.config import Recipe
from sleeptrain.data.augment import question_variants, restate_answers, subject_summaries
from sleeptrain.data.formats import Conversation, Message
from sleeptrain.data.render import IGNORE_INDEX, render_conversation, resolve_chat_template
from sleeptrain.hippocampus.memory import Memory
from sleeptrain.models.loading import inference_context
from sleeptrain.progress import progress_bar

ANSWER_ROLES = ("assistant",)


@dataclass
class SleepPlan:
    """The conversations of one sleep, by kind (anchors and dreams are added by the workflow)."""

    new: list[Conversation] = field(default_factory=list)  # pending memories, variants and summaries included
    corrections: int = 0
    replay: list[Conversation] = field(default_factory=list)
    replayed_ids: list[str] = field(default_factory=list)


def memory_conversation(memory: Memory, question: str | None = None, restate: bool = False) -> Conversation:
    """One memory as the conversation that teaches it (see the module docstring for free text); with `restate`
    (the recipe's answer_statements), a fact's short answer as a sentence that begins with its subject."""
    origin = f"memory:{memory.id}"
    memory = memory.as_taught()
    if memory.is_fact or question is not None:
        asked = question or memory.question or ""
        fact = Conversation(
            (Message("user", asked.strip()), Message("assistant", (memory.answer or memory.text).strip())),
            ANSWER_ROLES,
            memory.subject,
            origin,
        )
        return restate_answers([fact])[0] if restate else fact
    if memory.subject:
        return Conversation(
            (Message("user", f"What do you remember about {memory.subject}?"), Message("assistant", memory.text)),
            ANSWER_ROLES,
            memory.subject,
            origin,
        )
    return Conversation((Message("user", memory.text),), ("user",), None, origin)


def taught_conversations(memories: list[Memory], recipe: Recipe) -> list[Conversation]:
    """Each memory as the conversation that teaches it under the recipe (its answer_statements)."""
    return [memory_conversation(m, restate=recipe.answer_statements) for m in memories]


def new_conversations(
    pending: list[Memory], active: list[Memory], superseded: dict[str, Memory], recipe: Recipe, seed: int
) -> tuple[list[Conversation], int]:
    """The pending memories as training conversations; returns them and how many were corrections."""
    taught: list[Conversation] = []
    corrections = 0
    for memory in pending:
        taught.append(memory_conversation(memory, restate=recipe.answer_statements))
        old = superseded.get(memory.supersedes or "")
        if old is not None:
            corrections += 1
            old_question = old.question if old.is_fact else None
            if old_question and old_question.strip() != (memory.question or "").strip():
                taught.append(memory_conversation(memory, old_question, recipe.answer_statements))
    out = question_variants(taught, recipe.question_variants, seed, recipe.question_rewrites, recipe.topic_questions)
    if recipe.subject_summaries:
        subjects = {m.subject for m in pending if m.subject and m.is_fact}
        facts = taught_conversations([m for m in active if m.subject in subjects and m.is_fact], recipe)
        out += subject_summaries(facts)[len(facts) :]  # the summaries alone
    return out, corrections


def replay_conversations(
    chosen: list[Memory], active: list[Memory], recipe: Recipe, seed: int, variants_at_least: int = 0
) -> list[Conversation]:
    """The chosen memories in `replay_variants` wordings each, plus (with `replay_summaries`) one summary of
    every active fact per subject they are about: a single example that rehearses all of a subject's facts."""
    variants = max(recipe.sleep.replay_variants, variants_at_least)
    rehearsed: list[Conversation] = []
    if variants > 0:
        rehearsed = question_variants(
            taught_conversations(chosen, recipe), variants, seed, recipe.question_rewrites, recipe.topic_questions
        )
    if recipe.sleep.replay_summaries:
        subjects = {m.subject for m in chosen if m.subject and m.is_fact}
        facts = taught_conversations([m for m in active if m.subject in subjects and m.is_fact], recipe)
        rehearsed += subject_summaries(facts)[len(facts) :]
    return rehearsed


@dataclass(frozen=True)
class AnswerScore:
    loss: float  # mean loss of the answer's tokens
    reproduced: bool  # every answer token is the model's top choice given the ones before it


def score_answers(
    model: Any, tokenizer: Any, recipe: Recipe, conversations: list[Conversation], progress: str | None = None
) -> list[AnswerScore]:
    """How well `model` knows each conversation's trained tokens, from forward passes only (batched), under a
    progress bar labelled `progress` where one is given.

    `reproduced` is exact: when every answer token is the argmax given the true tokens before it, greedy
    decoding from the question writes the stored answer token for token. So one forward pass per memory
    tells whether the adapter still answers it, without generating."""
    import torch
    import torch.nn.functional as F

    template = resolve_chat_template(tokenizer, recipe.chat_template)
    rows = [
        render_conversation(c, tokenizer, template, recipe.system_prompt, recipe.sequence_len) for c in conversations
    ]
    pad = tokenizer.pad_token_id
    scores: list[AnswerScore] = []
    was_training = model.training
    model.eval()
    try:
        for start in progress_bar(range(0, len(rows), 16), label=progress, unit="batch"):
            chunk = rows[start : start + 16]
            width = max(len(r["input_ids"]) for r in chunk)
            ids = torch.tensor([r["input_ids"] + [pad] * (width - len(r["input_ids"])) for r in chunk])
            mask = torch.tensor([r["attention_mask"] + [0] * (width - len(r["input_ids"])) for r in chunk])
            labels = torch.tensor([r["labels"] + [IGNORE_INDEX] * (width - len(r["labels"])) for r in chunk])
            with inference_context(model):
                logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device)).logits.float()
            targets = labels[:, 1:].to(logits.device)
            labelled = targets != IGNORE_INDEX
            per_token = F.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]),
                targets.reshape(-1),
                ignore_index=IGNORE_INDEX,
                reduction="none",
            ).view(targets.shape)
            counts = labelled.sum(dim=1).clamp_min(1)
            hits = (logits[:, :-1].argmax(dim=-1) == targets) | ~labelled
            for loss, reproduced in zip(
                (per_token.sum(dim=1) / counts).tolist(), hits.all(dim=1).tolist(), strict=True
            ):
                scores.append(AnswerScore(loss, bool(reproduced)))
    finally:
        model.train(was_training)
    return scores


def answer_losses(
    model: Any, tokenizer: Any, recipe: Recipe, conversations: list[Conversation], progress: str | None = None
) -> list[float]:
    """The mean loss of each conversation's trained tokens under `model` (score_answers)."""
    return [score.loss for score in score_answers(model, tokenizer, recipe, conversations, progress)]


def replay_count(recipe: Recipe, new_memories: int, consolidated: int) -> int:
    return min(consolidated, math.ceil(recipe.sleep.replay_ratio * new_memories))


def choose_replay(
    consolidated: list[Memory], count: int, recipe: Recipe, seed: int, losses: list[float] | None = None
) -> list[Memory]:
    """`count` consolidated memories to rehearse: the highest losses first, or a random sample."""
    if count <= 0 or not consolidated:
        return []
    if count >= len(consolidated):
        return list(consolidated)
    if recipe.sleep.replay_selection == "worst" and losses is not None:
        order = sorted(range(len(consolidated)), key=lambda i: -losses[i])
        return [consolidated[i] for i in order[:count]]
    return random.Random(seed).sample(consolidated, count)
