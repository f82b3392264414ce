"""Turning conversations into a tokenized `datasets.Dataset`: for `sleep`, all of a run's rows interleaved
across subjects so that no person's facts are trained as one block (the original experiment's fix for
catastrophic forgetting); for `train`, each phrasing of each example once, with the example it belongs to,
for training/schedule.py to lay out epoch by epoch (shuffled, so no block either)."""

from __future__ import annotations

import logging
import math
import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from datasets import Dataset, interleave_datasets

from sleeptrain.config import DatasetConfig, Recipe
from sleeptrain.data.augment import SUMMARY_ORIGIN, question_phrasings, restate_answers, subject_summaries
from sleeptrain.data.formats import Conversation, read_anchor_prompts, read_conversations
from sleeptrain.data.render import (
    IGNORE_INDEX,
    markers_split_by,
    plain_text_windows,
    render_conversation,
    resolve_chat_template,
)
from sleeptrain.errors import SleeptrainError
from sleeptrain.wording import counted

log = logging.getLogger("sleeptrain")


@dataclass
class RecipeExamples:
    """A recipe's examples: those trained, each as its list of phrasings (the recipe's augmentations of QA
    facts: `question_variants` phrasings each, plus subject summaries; a chat example has one), and those
    held out of training (`val_set_size`, `test_datasets`), each as it is written (a QA fact's answer restated
    as trained)."""

    training: list[list[Conversation]]
    held_out: list[Conversation] = field(default_factory=list)


def load_recipe_split(recipe: Recipe) -> RecipeExamples:
    """Every example of the recipe's datasets and test_datasets, read and checked: those to train, and those
    held out (the test_datasets', or those `val_set_size` draws from the datasets)."""
    facts, chats = _read_datasets(recipe.datasets, recipe)
    warn_about_repeated_questions(facts)
    if recipe.test_datasets:
        held_facts, held_chats = _read_datasets(recipe.test_datasets, recipe)
    else:
        facts, chats, held_facts, held_chats = _hold_out(facts, chats, recipe)
    if recipe.answer_statements:
        facts, held_facts = restate_answers(facts), restate_answers(held_facts)
    if recipe.subject_summaries:
        facts = subject_summaries(facts)  # of the trained facts only: a summary would teach a held-out one
    rng = random.Random(recipe.seed)
    variants, rewrite, topics = recipe.question_variants, recipe.question_rewrites, recipe.topic_questions
    training = [question_phrasings(fact, variants, rng, rewrite, topics) for fact in facts] + [[c] for c in chats]
    return RecipeExamples(training, held_facts + held_chats)


def _read_datasets(datasets: list[DatasetConfig], recipe: Recipe) -> tuple[list[Conversation], list[Conversation]]:
    """The QA facts and the other conversations of these data files, each in file order."""
    facts: list[Conversation] = []
    chats: list[Conversation] = []
    for dataset in datasets:
        for path in dataset.files():
            rows = read_conversations(path, dataset.type, recipe.roles_to_train(dataset), dataset)
            (facts if dataset.type == "qa" else chats).extend(rows)
    return facts, chats


def load_recipe_examples(recipe: Recipe) -> list[list[Conversation]]:
    """The recipe's trained examples, each as its list of phrasings (load_recipe_split)."""
    return load_recipe_split(recipe).training


def _hold_out(facts: list[Conversation], chats: list[Conversation], recipe: Recipe) -> tuple[list, list, list, list]:
    """The facts and chats left to train and those `val_set_size` holds out (a share below 1, else a count),
    drawn with the recipe's seed from every dataset's rows; each in its order."""
    size, total = recipe.val_set_size, len(facts) + len(chats)
    if not size:
        return facts, chats, [], []
    count = math.ceil(size * total) if size < 1 else int(size)
    if count >= total:
        raise SleeptrainError(
            f"val_set_size: {size:g} holds out {count} of the {total} examples, leaving none to train"
        )
    chosen = set(random.Random(recipe.seed).sample(range(total), count))
    held_facts = [fact for index, fact in enumerate(facts) if index in chosen]
    held_chats = [chat for index, chat in enumerate(chats, start=len(facts)) if index in chosen]
    if held_facts:
        log.warning(
            "val_set_size: %d of %d QA facts are held out and not taught; their loss says how the rest generalise",
            len(held_facts),
            len(facts),
        )
    kept_facts = [fact for index, fact in enumerate(facts) if index not in chosen]
    kept_chats = [chat for index, chat in enumerate(chats, start=len(facts)) if index not in chosen]
    return kept_facts, kept_chats, held_facts, held_chats


def warn_about_repeated_questions(facts: list[Conversation]) -> None:
    """A warning for each QA fact that asks an earlier fact's question again with another answer: trained on
    both, a model answers with either, or a blend. Repeats with the same answer (or one that contains the
    other: "Lyon" and "Ann was born in Lyon.") are only counted. Nothing is dropped: the data is the user's."""
    first: dict[str, Conversation] = {}
    repeats = 0
    for fact in facts:
        key = _plain(fact.messages[0].content)
        earlier = first.setdefault(key, fact)
        if earlier is fact:
            continue
        answer, earlier_answer = fact.messages[-1].content, earlier.messages[-1].content
        if _plain(answer) in _plain(earlier_answer) or _plain(earlier_answer) in _plain(answer):
            repeats += 1
        else:
            log.warning(
                "%s: the question of %s again, with another answer (%r; there %r): both are trained",
                fact.origin,
                earlier.origin,
                answer,
                earlier_answer,
            )
    if repeats:
        log.info("%d QA facts repeat an earlier question with its answer", repeats)


def _plain(text: str) -> str:
    return " ".join(text.casefold().split()).rstrip(" ?.!")


def load_recipe_anchor_prompts(recipe: Recipe) -> list[str]:
    """The prompts whose base-model answers the recipe replays (its `anchor_prompts` file, or the bundled set);
    none where it replays no anchors (`anchor_ratio: 0`), whose file is then not read."""
    return read_anchor_prompts(recipe.anchor_prompts) if recipe.anchor_ratio > 0 else []


def load_recipe_conversations(recipe: Recipe) -> list[Conversation]:
    """Every phrasing of every example of the recipe, once."""
    return [conversation for phrasings in load_recipe_examples(recipe) for conversation in phrasings]


def split_long_texts(examples: list[list[Conversation]], tokenizer: Any, sequence_len: int) -> list[list[Conversation]]:
    """The examples with each plain text longer than sequence_len replaced by its windows, each an example
    of its own (learnt, scheduled and counted apart), so that all of a long text is trained, not only its
    first sequence_len tokens."""
    split: list[list[Conversation]] = []
    long_texts = windows = 0
    for phrasings in examples:
        if len(phrasings) != 1 or not phrasings[0].plain_text:
            split.append(phrasings)
            continue
        parts = plain_text_windows(phrasings[0], tokenizer, sequence_len)
        split.extend([part] for part in parts)
        if len(parts) > 1:
            long_texts, windows = long_texts + 1, windows + len(parts)
    if long_texts:
        log.info(
            "sequence_len=%d: %s longer than that split into %s, each after the end of the one before",
            sequence_len,
            counted(long_texts, "text"),
            counted(windows, "window"),
        )
    return split


@dataclass
class TokenCounts:
    """What a recipe's examples come to in tokens (sleeptrain check --tokens), anchors aside."""

    examples: int  # trained examples, a long text's windows each one
    phrasings: int  # their rows: every phrasing of every example
    tokens: int
    trained: int  # tokens under the loss
    per_epoch: int  # an epoch trains each example once, in one of its phrasings: their mean lengths summed
    longest: int
    longest_origin: str


def count_tokens(recipe: Recipe, tokenizer: Any, examples: list[list[Conversation]]) -> TokenCounts:
    """The recipe's examples rendered as a run renders them (its warnings about what sequence_len cuts or
    leaves with nothing to train included), counted."""
    examples = split_long_texts(examples, tokenizer, recipe.sequence_len)
    phrasings = [c for p in examples for c in p]
    rendered, why = _rendered(recipe, tokenizer, phrasings)
    lengths = [(len(row["input_ids"]), c.origin) for c, row in zip(phrasings, rendered, strict=True) if row is not None]
    if not lengths:
        raise _nothing_to_train(why)
    rows = iter(rendered)
    per_epoch = 0.0
    kept_examples = 0
    for example in examples:
        kept = [len(row["input_ids"]) for row in (next(rows) for _ in example) if row is not None]
        if kept:
            kept_examples += 1
            per_epoch += sum(kept) / len(kept)
    trained = sum(label != IGNORE_INDEX for row in rendered if row is not None for label in row["labels"])
    longest, origin = max(lengths, key=lambda pair: pair[0])
    total = sum(length for length, _ in lengths)
    return TokenCounts(kept_examples, len(lengths), total, trained, round(per_epoch), longest, origin)


def interleave_by_subject(rows: list[dict[str, Any]], seed: int) -> Dataset:
    """Round-robin across subjects (rows without one form their own group per source file)."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[row["subject"]].append(row)
    parts = [Dataset.from_list(group) for group in groups.values()]
    if len(parts) == 1:
        return parts[0]
    return interleave_datasets(parts, seed=seed, stopping_strategy="all_exhausted_without_replacement")


@dataclass
class ExampleRows:
    """Where a run's examples are in its dataset: each example's rows (one per phrasing), the anchors' rows
    in the order they are used, and how many anchors a whole epoch has."""

    phrasings: list[list[int]]
    anchors: list[int]
    anchors_per_epoch: int
    lengths: list[int]  # tokens of each dataset row
    # Examples whose learning does not keep a run going (subject summaries: long, rarely written token for
    # token, and there to help the facts be learnt).
    optional: frozenset[int] = frozenset()


def _named(origins: dict[str, int]) -> str:
    """The first three examples (file:line) of those counted, and how many more."""
    shown = ", ".join(list(origins)[:3])
    return shown + (f" and {len(origins) - 3} more" if len(origins) > 3 else "")


def _skipped(origins: dict[str, int]) -> str:
    """How many phrasings of how many examples, and how many anchors, these are (anchors are counted, not
    named: their origin is only their place in the bundled prompts)."""
    anchors = sum(count for origin, count in origins.items() if origin.startswith("anchor:"))
    examples = {origin: count for origin, count in origins.items() if not origin.startswith("anchor:")}
    parts = []
    if examples:
        phrasings = sum(examples.values())
        of = f"{counted(phrasings, 'phrasing')} of " if phrasings != len(examples) else ""
        parts.append(f"{of}{counted(len(examples), 'example')} ({_named(examples)})")
    if anchors:
        parts.append(counted(anchors, "anchor"))
    return " and ".join(parts)


def _rendered(
    recipe: Recipe, tokenizer: Any, conversations: list[Conversation]
) -> tuple[list[dict[str, Any] | None], str]:
    """Each conversation rendered as a training row, or None where no token is trained, and why those were
    left out ("" if none was). Rows get a `distill` column, which the trainer reads to tell anchors taught the
    base model's distributions from the rest, when the recipe distils anchors. What was cut or left out is
    said in one warning each, not one line per phrasing: a sequence_len too short for a run's examples would
    otherwise print a line for every phrasing and anchor."""
    template = resolve_chat_template(tokenizer, recipe.chat_template)
    split = markers_split_by(tokenizer, recipe.chat_template)
    if split:
        log.warning(
            "chat_template %s: %s not one token each for this tokenizer, so the model learns them as plain text; "
            "the template of the model's own family, or tokenizer_default, fits it better",
            recipe.chat_template,
            ", ".join(split) + (" is" if len(split) == 1 else " are"),
        )
    distill = recipe.anchor_distillation and any(c.distill for c in conversations)
    rows: list[dict[str, Any] | None] = []
    # By the example (file:line) they phrase: phrasings cut short, phrasings cut before any trained token, and
    # those whose trained roles have no turn.
    truncated: dict[str, int] = defaultdict(int)
    cut_out: dict[str, int] = defaultdict(int)
    untrained: dict[str, int] = defaultdict(int)
    for conversation in conversations:
        row = render_conversation(conversation, tokenizer, template, recipe.system_prompt, recipe.sequence_len)
        cut = conversation.window is None and len(row["input_ids"]) == recipe.sequence_len
        if all(label == IGNORE_INDEX for label in row["labels"]):
            (cut_out if cut else untrained)[conversation.origin] += 1
            rows.append(None)
            continue
        if cut:
            truncated[conversation.origin] += 1
        rows.append(row | ({"distill": int(conversation.distill)} if distill else {}))
    if truncated:
        log.warning(
            "sequence_len=%d cut %s; a larger sequence_len keeps them whole", recipe.sequence_len, _skipped(truncated)
        )
    reasons = []
    if cut_out:
        reasons.append(f"sequence_len={recipe.sequence_len} ends before their first trained token")
        log.warning("sequence_len=%d left nothing to train in %s: skipped", recipe.sequence_len, _skipped(cut_out))
    if untrained:
        reasons.append("none of their turns is trained: roles_to_train, or a turn's own training or weight")
        log.warning(
            "no turn to train (roles_to_train, train_on_inputs, a turn's training or weight) in %s: skipped",
            _skipped(untrained),
        )
    return rows, "; ".join(reasons)


def _nothing_to_train(why: str) -> SleeptrainError:
    return SleeptrainError("datasets: no example has a token to train on" + (f" ({why})" if why else ""))


def build_example_dataset(
    recipe: Recipe, tokenizer: Any, examples: list[list[Conversation]], anchors: list[Conversation], epochs: int
) -> tuple[Dataset, ExampleRows]:
    """Every phrasing of every example and every anchor (enough for `epochs` epochs), rendered once, as one
    dataset with an `example` column (the example's index, -1 for an anchor) for the epochs that
    training/schedule.py plans, and where each example's rows are. Which rows each epoch trains, in which
    order, is the schedule's to choose."""
    rendered_rows, why = _rendered(recipe, tokenizer, [c for phrasings in examples for c in phrasings] + anchors)
    rendered = iter(rendered_rows)
    rows: list[dict[str, Any]] = []
    phrasing_rows: list[list[int]] = []
    optional = set()
    for phrasings in examples:
        kept = []
        for row in (next(rendered) for _ in phrasings):
            if row is not None:
                kept.append(len(rows))
                rows.append(row | {"example": len(phrasing_rows)})
        if kept:
            if phrasings[0].origin.startswith(SUMMARY_ORIGIN):
                optional.add(len(phrasing_rows))
            phrasing_rows.append(kept)
    if not rows:
        raise _nothing_to_train(why)
    anchor_rows = []
    for row in rendered:
        if row is not None:
            anchor_rows.append(len(rows))
            rows.append(row | {"example": -1})
    lengths = [len(row["input_ids"]) for row in rows]
    per_epoch = math.ceil(len(anchor_rows) / max(1, epochs))
    layout = ExampleRows(phrasing_rows, anchor_rows, per_epoch, lengths, frozenset(optional))
    return Dataset.from_list(rows), layout


def build_training_dataset(recipe: Recipe, tokenizer: Any, conversations: list[Conversation]) -> Dataset:
    """Render every conversation, drop those with no trained token, and interleave across subjects."""
    rows = []
    rendered, why = _rendered(recipe, tokenizer, conversations)
    for conversation, row in zip(conversations, rendered, strict=True):
        if row is not None:
            subject = conversation.subject or conversation.origin.rsplit(":", 1)[0]
            rows.append(row | {"subject": subject})
    if not rows:
        raise _nothing_to_train(why)
    return interleave_by_subject(rows, recipe.seed).remove_columns("subject")
