"""QA augmentations: reworded question variants, topic questions and one summary example per subject."""

from __future__ import annotations

from sleeptrain.config import DatasetConfig, Recipe
from sleeptrain.data.augment import (
    QUESTION_FRAMES,
    WELL_KNOWN_PEOPLE,
    contrast_questions,
    question_variants,
    restate_answers,
    subject_summaries,
    topic_words,
)
from sleeptrain.data.formats import Conversation, Message
from sleeptrain.data.mixing import load_recipe_conversations
from sleeptrain.data.rewrites import question_rewrites


def fact(question: str, answer: str, subject: str | None = "Ilvana Drosk") -> Conversation:
    return Conversation((Message("user", question), Message("assistant", answer)), ("assistant",), subject, "f:1")


FACTS = [
    fact("Where was Ilvana Drosk born?", "Ilvana Drosk was born in Tromsø, Norway."),
    fact("Which instrument does she play?", "The cello"),
    fact("What does Bob like?", "Bob likes red boats.", subject="Bob"),
]


def test_one_variant_means_no_augmentation():
    assert question_variants(FACTS, 1, seed=0) == FACTS


def test_question_variants_reword_the_question_and_keep_the_answer():
    varied = question_variants(FACTS[:1], 4, seed=0)

    assert varied[0] == FACTS[0]
    assert len(varied) == 4
    questions = [c.messages[0].content for c in varied]
    assert len(set(questions)) == 4
    for copy in varied[1:]:
        assert "Ilvana Drosk" in copy.messages[0].content or "ilvana drosk" in copy.messages[0].content
        assert copy.messages[1] == FACTS[0].messages[1]
        assert copy.subject == FACTS[0].subject and copy.roles_to_train == FACTS[0].roles_to_train


def test_other_wordings_of_the_question_take_turns_with_frames():
    questions = [c.messages[0].content for c in question_variants(FACTS[:1], 5, seed=0)]

    rewrites = question_rewrites("Where was Ilvana Drosk born?", "Ilvana Drosk")
    assert questions[1] in rewrites and questions[3] in rewrites
    assert questions[2] not in rewrites and questions[4] not in rewrites  # framed
    assert any(frame.split("{")[0].strip() in questions[2] or questions[2].islower() for frame in QUESTION_FRAMES)


def test_without_rewrites_every_variant_is_a_frame_around_the_question():
    for copy in question_variants(FACTS[:1], 4, seed=0, rewrite=False)[1:]:
        assert "ilvana drosk born" in copy.messages[0].content.lower()


def test_a_question_no_rule_knows_gets_frames_only():
    questions = [c.messages[0].content for c in question_variants(FACTS[2:], 4, seed=0)]
    assert all("what does bob like" in q.lower() for q in questions)


def test_question_variants_are_reproducible_with_the_seed():
    assert question_variants(FACTS, 3, seed=7) == question_variants(FACTS, 3, seed=7)


def test_variants_never_exceed_the_available_wordings_and_frames():
    rewrites = question_rewrites("Where was Ilvana Drosk born?", "Ilvana Drosk")
    assert len(question_variants(FACTS[:1], 100, seed=0)) == 1 + len(rewrites) + len(QUESTION_FRAMES)
    assert len(question_variants(FACTS[2:], 100, seed=0)) == 1 + len(QUESTION_FRAMES)


def test_multi_turn_chats_are_not_varied():
    chat = Conversation(
        (Message("user", "hi"), Message("assistant", "hello"), Message("user", "bye"), Message("assistant", "bye")),
        ("assistant",),
        None,
        "c:1",
    )
    assert question_variants([chat], 3, seed=0) == [chat]


def test_subject_summaries_gather_each_subjects_facts_into_one_answer():
    summarised = subject_summaries(FACTS)

    assert summarised[: len(FACTS)] == FACTS
    (summary,) = summarised[len(FACTS) :]  # Bob has one fact only: no summary
    assert summary.messages[0].content == "What do you know about Ilvana Drosk?"
    answer = summary.messages[1].content
    assert "Ilvana Drosk was born in Tromsø, Norway." in answer
    assert "Which instrument does she play? The cello." in answer  # an answer without the name keeps its question
    assert summary.subject == "Ilvana Drosk"
    assert summary.origin == "summary:Ilvana Drosk"


def test_the_recipe_switches_the_augmentations_on(write_jsonl, qa_rows):
    rows = qa_rows + [{"question": "Where does Alice live?", "answer": "Alice lives in Bruges.", "subject": "Alice"}]
    recipe = Recipe(
        datasets=[DatasetConfig(path=write_jsonl("facts.jsonl", rows))],
        output_dir="out",
        question_variants=2,
        subject_summaries=True,
    )

    conversations = load_recipe_conversations(recipe)

    # 4 facts + 1 summary (Alice), each asked in 2 wordings
    assert len(conversations) == (len(rows) + 1) * 2
    assert sum(c.origin == "summary:Alice" for c in conversations) == 2


def test_restated_answers_begin_with_the_subject_and_the_summary_uses_them():
    facts = [
        fact("Which city does Ilvana Drosk live in?", "Lyon"),
        fact("Where was Ilvana Drosk born?", "Ilvana Drosk was born in Tromsø, Norway."),
        fact("How old was Ilvana Drosk when she moved to Chile?", "19"),
    ]

    restated = restate_answers(facts)

    assert restated[0].messages[1].content == "Ilvana Drosk lives in Lyon."
    assert restated[0].messages[0] == facts[0].messages[0] and restated[0].origin == facts[0].origin
    assert restated[1] == facts[1]  # it names her already
    assert restated[2].messages[1].content == "Ilvana Drosk was 19 when she moved to Chile."
    summary = subject_summaries(restated)[-1].messages[1].content
    assert summary.startswith("Ilvana Drosk lives in Lyon. Ilvana Drosk was born in Tromsø")


def test_the_recipe_restates_answers_only_when_asked(write_jsonl):
    rows = [{"question": "Which city does Alice Marlow live in?", "answer": "Bruges", "subject": "Alice Marlow"}]
    path = write_jsonl("facts.jsonl", rows)

    def answers(**keys):
        recipe = Recipe(datasets=[DatasetConfig(path=path)], output_dir="out", question_variants=2, **keys)
        return {c.messages[1].content for c in load_recipe_conversations(recipe)}

    assert answers(answer_statements=True) == {"Alice Marlow lives in Bruges."}
    assert answers(answer_statements=False) == {"Bruges"}


# -------------------------------------------------------------------------------------- contrast questions


def test_contrast_questions_ask_a_facts_question_about_well_known_people():
    facts = [fact("Where was Hollis Varnaby born?", "Hobart", "Hollis Varnaby"), fact("What is 2+2?", "4", "Maths")]

    questions = contrast_questions(facts, per_fact=3, seed=1)

    assert len(questions) == 3  # none for a fact whose question does not name its subject
    people = {q.removeprefix("Where was ").removesuffix(" born?") for q in questions}
    assert len(people) == 3 and people <= set(WELL_KNOWN_PEOPLE)
    assert contrast_questions(facts, per_fact=3, seed=1) == questions
    assert contrast_questions(facts, per_fact=0, seed=1) == []


def test_a_fact_in_several_phrasings_gets_one_set_of_contrast_questions():
    phrasings = question_variants([fact("Where was Hollis Varnaby born?", "Hobart", "Hollis Varnaby")], 4, seed=1)
    assert len(phrasings) == 4
    questions = contrast_questions(phrasings, per_fact=2, seed=1)
    assert len(questions) == 2 and all(q.startswith("Where was ") for q in questions)


# -------------------------------------------------------------------------------------- topic questions


def test_topic_words_are_what_a_question_asks_about():
    assert topic_words("What kind of car does Baltus Crewe drive?", "Baltus Crewe") == ["car", "drive"]
    assert topic_words("In which year did Baltus Crewe open his first bakery?", "Baltus Crewe") == [
        "year",
        "open",
        "bakery",
    ]
    assert topic_words("What does Baltus Crewe eat every Sunday morning?", "Baltus Crewe") == [
        "eat",
        "Sunday",
        "morning",
    ]
    assert topic_words("What is the name of Ana Lúcia’s dog’s vet?", "Ana Lúcia") == ["dog", "vet"]
    assert topic_words("What did Orla Penn win in 2011?", "Orla Penn") == ["win", "2011"]


def test_topic_questions_come_first_and_keep_the_answer():
    car = fact("What kind of car does Baltus Crewe drive?", "Baltus Crewe drives a Citroën.", "Baltus Crewe")

    phrasings = question_variants([car], 6, seed=3, topics=2)

    assert len(phrasings) == 6 and phrasings[0] == car
    topical = [p.messages[0].content for p in phrasings[1:3]]
    assert {word for q in topical for word in ("car", "drive") if q.rstrip("?.").endswith(word)} == {"car", "drive"}
    assert all("Baltus Crewe" in q and "kind of" not in q for q in topical)
    assert all(p.messages[1] == car.messages[1] for p in phrasings)
    # The rest are other wordings and frames of the question itself.
    assert all("car does baltus crewe drive" in p.messages[0].content.lower() for p in phrasings[3:])


def test_topic_questions_take_at_most_half_of_the_other_phrasings():
    car = fact("What kind of car does Baltus Crewe drive?", "Baltus Crewe drives a Citroën.", "Baltus Crewe")
    assert sum("kind of car" not in p.messages[0].content for p in question_variants([car], 3, seed=0, topics=2)) == 1
    assert question_variants([car], 6, seed=0, topics=0) == question_variants([car], 6, seed=0)


def test_no_topic_questions_without_a_subject_the_question_names():
    sheet = fact("Which instrument does she play?", "The cello")
    assert all("play" in p.messages[0].content.lower() for p in question_variants([sheet], 4, seed=0, topics=2))


def test_the_recipe_sets_how_many_topic_questions(write_jsonl):
    rows = [{"question": "What kind of car does Alice Marlow drive?", "answer": "A Lada", "subject": "Alice Marlow"}]
    path = write_jsonl("facts.jsonl", rows)

    def questions(**keys):
        recipe = Recipe(datasets=[DatasetConfig(path=path)], output_dir="out", subject_summaries=False, **keys)
        return [c.messages[0].content for c in load_recipe_conversations(recipe)]

    assert sum("kind of car" not in q for q in questions()) == 2  # the default
    assert sum("kind of car" not in q for q in questions(topic_questions=0)) == 0
