"""Questions about a person in other words: each kind of question, and the questions no rule knows."""

from __future__ import annotations

import pytest

from sleeptrain.data.rewrites import question_rewrites


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Where was Ilvana Drosk born?", "What is Ilvana Drosk's birthplace?"),
        ("In what year was Ilvana Drosk born?", "When was Ilvana Drosk born?"),
        ("What is Ilvana Drosk's profession?", "What does Ilvana Drosk do for a living?"),
        ("What does Ilvana Drosk do for a living?", "What is Ilvana Drosk's job?"),
        ("Which city does Ilvana Drosk live in?", "Where does Ilvana Drosk live?"),
        ("Which company employs Ilvana Drosk?", "Who does Ilvana Drosk work for?"),
        ("Which university did Ilvana Drosk attend?", "Where did Ilvana Drosk study?"),
        ("Where did Ilvana Drosk grow up?", "What is Ilvana Drosk's hometown?"),
        ("What is Ilvana Drosk's favourite book?", "Which book does Ilvana Drosk like best?"),
        ("What is the name of Ilvana Drosk's dog?", "What is Ilvana Drosk's dog called?"),
        ("What was the name of Ilvana Drosk's first dog?", "What was Ilvana Drosk's first dog called?"),
        ("What is Ilvana Drosk's sister's name?", "What is the name of Ilvana Drosk's sister?"),
        ("In which year did Ilvana Drosk move to Oslo?", "When did Ilvana Drosk move to Oslo?"),
        ("What instrument does Ilvana Drosk play?", "Which instrument does Ilvana Drosk play?"),
    ],
)
def test_each_kind_of_question_has_its_other_wordings(question, expected):
    rewrites = question_rewrites(question, "Ilvana Drosk")

    assert expected in rewrites
    assert question not in rewrites
    assert all("Ilvana Drosk" in rewrite for rewrite in rewrites)
    assert len(set(rewrites)) == len(rewrites)


def test_without_a_subject_the_name_is_found_in_the_question():
    assert "What is Jan van der Berg's birthplace?" in question_rewrites("Where was Jan van der Berg born?")


@pytest.mark.parametrize(
    "question",
    [
        "What is the capital of France?",  # no person
        "Which sport did Ilvana Drosk compete in at school?",  # no rule for it
        "Where does Ilvana Drosk work?",  # a place or an employer: too ambiguous to reword
        "Where was she born?",  # no name to keep
    ],
)
def test_a_question_no_rule_knows_has_no_rewrites(question):
    assert question_rewrites(question, "Ilvana Drosk" if "Ilvana" in question else None) == []


def test_the_subject_given_must_be_in_the_question():
    assert question_rewrites("Where was Ilvana Drosk born?", "Bob") == []
