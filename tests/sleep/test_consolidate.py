"""What a sleep trains on: new memories with variants and summaries, corrections, replay, dreams."""

from __future__ import annotations

import torch

from sleeptrain.config import Recipe, SleepConfig
from sleeptrain.hippocampus import Memory
from sleeptrain.sleep.consolidate import (
    answer_losses,
    choose_replay,
    memory_conversation,
    new_conversations,
    replay_conversations,
    replay_count,
)
from sleeptrain.sleep.dreams import dream_prompts


def fact(id_, subject, question, answer, supersedes=None) -> Memory:
    return Memory(id_, f"{question} {answer}", question, answer, subject, supersedes=supersedes)


def recipe(**sleep) -> Recipe:
    return Recipe(output_dir="out", question_variants=3, sleep=SleepConfig(**sleep))


OLD = [
    fact("a1", "Alice", "What does Alice like?", "Alice likes apples."),
    fact("a2", "Alice", "Where does Alice live?", "Alice lives in Oslo."),
    fact("b1", "Bob", "What does Bob like?", "Bob likes boats."),
]


def test_a_free_text_memory_is_taught_under_its_subject_or_as_text():
    with_subject = memory_conversation(Memory("x", "Alice moved to Lima.", subject="Alice"))
    assert [m.content for m in with_subject.messages] == ["What do you remember about Alice?", "Alice moved to Lima."]
    bare = memory_conversation(Memory("y", "The meeting is on Friday."))
    assert bare.roles_to_train == ("user",) and bare.messages[0].content == "The meeting is on Friday."


def test_a_correction_cue_is_not_taught_as_part_of_the_fact():
    text = Memory("c", "Correction: Marta Quell was born in Tartu, not Tallinn.", subject="Marta Quell")
    fact = Memory("f", "x", question="Where was Marta Quell born?", answer="Actually, Tartu.", subject="Marta Quell")

    assert memory_conversation(text).messages[1].content == "Marta Quell was born in Tartu, not Tallinn."
    assert memory_conversation(fact).messages[1].content == "Tartu."
    assert text.text.startswith("Correction:")  # the stored memory keeps its words


def test_with_answer_statements_a_memorys_short_answer_is_taught_as_a_sentence_about_its_subject():
    new = fact("c1", "Carla Mendt", "Which city does Carla Mendt live in?", "Lyon")
    assert memory_conversation(new).messages[1].content == "Lyon"
    assert memory_conversation(new, restate=True).messages[1].content == "Carla Mendt lives in Lyon."

    restating = Recipe(output_dir="out", question_variants=3, answer_statements=True)
    conversations, _ = new_conversations([new], [new], {}, restating, seed=0)
    assert len(conversations) == 3
    assert {c.messages[1].content for c in conversations} == {"Carla Mendt lives in Lyon."}


def test_new_facts_get_variants_and_a_summary_of_every_active_fact_about_their_subject():
    new = fact("a3", "Alice", "What is Alice's job?", "Alice is a pilot.")
    conversations, corrections = new_conversations([new], [*OLD, new], {}, recipe(), seed=0)

    assert corrections == 0
    questions = [c.messages[0].content for c in conversations]
    assert len(questions) == 3 + 1 and questions[0] == "What is Alice's job?"
    summary = conversations[-1].messages[1].content
    assert questions[-1] == "What do you know about Alice?"
    assert "apples" in summary and "Oslo" in summary and "pilot" in summary and "boats" not in summary


def test_a_correction_teaches_the_new_answer_under_the_old_wording_too_and_its_summary_drops_the_old_answer():
    old = OLD[1]
    correction = fact("a9", "Alice", "Which city is Alice's home?", "Alice lives in Bergen.", supersedes="a2")
    active = [OLD[0], OLD[2], correction]  # the store no longer counts a superseded memory as active

    conversations, corrections = new_conversations([correction], active, {"a2": old}, recipe(), seed=0)

    assert corrections == 1
    pairs = {(c.messages[0].content, c.messages[1].content) for c in conversations}
    assert ("Where does Alice live?", "Alice lives in Bergen.") in pairs
    assert ("Which city is Alice's home?", "Alice lives in Bergen.") in pairs
    assert not any("Oslo" in answer for _, answer in pairs)
    assert len(conversations) == 2 * 3 + 1


def test_replay_count_follows_the_ratio_and_never_exceeds_what_is_consolidated():
    assert replay_count(recipe(replay_ratio=1.5), new_memories=4, consolidated=100) == 6
    assert replay_count(recipe(replay_ratio=1.5), new_memories=4, consolidated=3) == 3
    assert replay_count(recipe(replay_ratio=0), new_memories=4, consolidated=100) == 0


def test_worst_replay_takes_the_highest_losses_and_random_replay_is_reproducible():
    losses = [0.1, 2.0, 0.5]
    assert [m.id for m in choose_replay(OLD, 2, recipe(), seed=0, losses=losses)] == ["a2", "b1"]
    chosen = choose_replay(OLD, 2, recipe(replay_selection="random"), seed=3, losses=losses)
    assert chosen == choose_replay(OLD, 2, recipe(replay_selection="random"), seed=3) and len(chosen) == 2
    assert choose_replay(OLD, 5, recipe(), seed=0) == OLD


def test_replay_rehearses_each_memory_in_several_wordings_plus_its_subjects_summary():
    replay = replay_conversations([OLD[0]], OLD, recipe(replay_variants=2, replay_summaries=True), seed=0)
    assert len(replay) == 2 + 1
    assert {c.messages[1].content for c in replay[:2]} == {"Alice likes apples."}
    assert (
        replay[-1].messages[0].content == "What do you know about Alice?" and "Oslo" in replay[-1].messages[1].content
    )
    plain = replay_conversations([OLD[0]], OLD, recipe(replay_variants=1, replay_summaries=False), seed=0)
    assert [c.messages[0].content for c in plain] == ["What does Alice like?"]


def test_answer_losses_match_the_models_own_loss_per_example(tiny_llama, tokenizer):
    from transformers import AutoModelForCausalLM

    from sleeptrain.data.render import render_conversation

    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    conversations = [memory_conversation(m) for m in OLD]
    losses = answer_losses(model, tokenizer, recipe(), conversations)

    for conversation, loss in zip(conversations, losses, strict=True):
        row = render_conversation(conversation, tokenizer, tokenizer.chat_template, None, 512)
        with torch.no_grad():
            expected = model(**{k: torch.tensor([v]) for k, v in row.items()}).loss.item()
        assert abs(loss - expected) < 1e-4


def test_dream_prompts_go_round_robin_across_earlier_subjects():
    prompts = dream_prompts(OLD, count=3, seed=0)
    assert len(prompts) == 3
    assert {subject for _, subject in prompts[:2]} == {"Alice", "Bob"}
    assert all(q for q, _ in prompts)
    assert len(dream_prompts(OLD, count=50, seed=0)) == 3 + 2  # every question and one summary per subject


def test_replay_variants_zero_rehearses_only_the_subjects_summaries():
    replay = replay_conversations(OLD, OLD, recipe(replay_variants=0, replay_summaries=True), seed=0)
    assert sorted(c.messages[0].content for c in replay) == ["What do you know about Alice?"]  # Bob has one fact
