"""Each decision of the hippocampus gate, against a real SQLite store, with the local judge's rules (the
model's part is exercised in tests/workflows/test_memory.py with a tiny model)."""

from __future__ import annotations

from datetime import date

import pytest

from sleeptrain.config import HippocampusConfig
from sleeptrain.hippocampus import Memory, MemoryStore
from sleeptrain.hippocampus.gate import decide, resolve_subject
from sleeptrain.judges.local import LocalJudge

TODAY = date(2026, 11, 25)


@pytest.fixture
def store(tmp_path):
    with MemoryStore(tmp_path / "memories.sqlite") as opened:
        yield opened


def feed(store, text=None, question=None, answer=None, subject=None, config=None, context=None):
    """Judge one memory and store it with its decision, as ingest does."""
    memory = Memory(
        id=store.new_id(),
        text=text if text is not None else f"{question} {answer}",
        question=question,
        answer=answer,
        subject=subject,
    )
    verdict = decide(memory, store, LocalJudge(model_path=None), config or HippocampusConfig(), TODAY, context)
    store.add(memory, verdict)
    return memory, verdict


def test_novel_then_compatible_facts_are_stored(store):
    _, first = feed(store, "Ada Lindqvist was born in Tromsø in 1962.")
    memory, second = feed(store, "Ada works as a marine biologist.")
    assert (first.decision, second.decision) == ("store", "store")
    assert memory.subject == "Ada Lindqvist"  # "Ada" resolved to the stored subject


@pytest.mark.parametrize(
    "again",
    [
        {"text": "Ada Lindqvist was born in Tromsø in 1962."},
        {"text": "Ada's birthplace is Tromsø."},
        {"question": "Where was Ada born?", "answer": "Tromsø, Norway."},
    ],
)
def test_duplicates_and_paraphrases_are_rejected(store, again):
    original, _ = feed(store, "Ada Lindqvist was born in Tromsø in 1962.")
    _, verdict = feed(store, **again)
    assert verdict.decision == "reject"
    assert "duplicate" in verdict.reasons[0] and original.id in verdict.reasons[0]


@pytest.mark.parametrize(
    "text, problem",
    [
        ("Ada Lindqvist is 250 years old.", "impossible age"),
        ("Ada Lindqvist was born on 31 February 1980.", "31 February 1980 does not exist"),
        ("Ada Lindqvist's date of birth is 1980-13-05.", "month 13"),
        ("Ada Lindqvist was born in 2031.", "born in the future"),
        ("Ada Lindqvist was born in 1990 and died in 1985.", "before being born"),
    ],
)
def test_implausible_memories_are_rejected(store, text, problem):
    _, verdict = feed(store, text)
    assert verdict.decision == "reject"
    assert problem in verdict.reasons[0]


def test_a_death_before_a_stored_birth_is_implausible(store):
    feed(store, "Mei Tanaka was born on 3 April 1988.")
    _, verdict = feed(store, "Mei Tanaka died in 1979.")
    assert verdict.decision == "reject" and "before being born" in verdict.reasons[0]


def test_a_silent_paraphrased_contradiction_is_never_stored(store):
    original, _ = feed(store, "Ada Lindqvist was born in Tromsø.")
    for filler in ["Ada plays the cello.", "Ada speaks Sami.", "Ada likes jazz.", "Ada has a dog named Pepper."]:
        feed(store, filler)
    feed(store, "Ada lives in Bergen.")  # the birthplace is now older than the last five memories
    memory, verdict = feed(store, "Her birthplace is Oslo.", subject="Ada Lindqvist")
    assert verdict.decision == "reject"
    assert verdict.contradicts == [original.id]
    assert store.get(memory.id).status == "rejected"
    assert store.get(original.id).status == "pending"


def test_a_qa_row_contradicts_a_free_text_memory(store):
    original, _ = feed(store, "Ada's birthplace is Bergen.", subject="Ada")
    _, verdict = feed(store, question="Where was Ada born?", answer="Oslo")
    assert verdict.decision == "reject" and verdict.contradicts == [original.id]


@pytest.mark.parametrize(
    "correction",
    ["Correction: Ada was born in Oslo.", "Actually, Ada was born in Oslo.", "I was wrong: Ada was born in Oslo."],
)
def test_an_explicit_correction_supersedes_the_old_memory(store, correction):
    original, _ = feed(store, "Ada Lindqvist was born in Tromsø.")
    memory, verdict = feed(store, correction)
    assert verdict.decision == "correct" and verdict.supersedes == original.id
    assert store.get(original.id).status == "superseded"
    assert store.get(memory.id).status == "pending"
    assert [m.id for m in store.active("Ada Lindqvist")] == [memory.id]


def test_on_conflict_correct_turns_a_contradiction_into_a_correction(store):
    original, _ = feed(store, "Tomas lives in Rotterdam.", subject="Tomas Okafor")
    _, verdict = feed(store, "Tomas lives in Lisbon.", config=HippocampusConfig(on_conflict="correct"))
    assert verdict.decision == "correct" and verdict.supersedes == original.id


def test_an_age_that_contradicts_a_stored_birth_year_is_a_conflict(store):
    feed(store, "Rafael Duarte was born in Porto in 1980.")
    _, verdict = feed(store, "Rafael Duarte is 30 years old.")
    assert verdict.decision == "reject" and verdict.contradicts


@pytest.mark.parametrize("text", ["ok thanks!", "lol", "Thanks, that's great!", "hello there, how are you?"])
def test_chatter_is_rejected(store, text):
    _, verdict = feed(store, text)
    assert verdict.decision == "reject" and verdict.importance == 0.0


def test_a_pronoun_memory_without_subject_is_about_the_memory_before_it(store):
    feed(store, "Samuel has two children.", subject="Samuel Adeyemi")
    memory, verdict = feed(store, "He has three kids.", context="Samuel Adeyemi")
    assert memory.subject == "Samuel Adeyemi" and verdict.decision == "reject"


def test_subjects_resolve_to_the_stored_name():
    memory = Memory(id="m", text="Where was Ada born? Oslo", question="Where was Ada born?", answer="Oslo")
    assert resolve_subject(memory, ["Ada Lindqvist", "Tomas Okafor"]) == "Ada Lindqvist"
    assert resolve_subject(memory, ["Ada Lindqvist", "Ada Moreau"]) == "Ada"  # ambiguous: not guessed
