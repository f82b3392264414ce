"""Questions about a person in other words: each kind of question, and the questions no rule knows."""

from __future__ import annotations

import pytest

from sleeptrain.data.rewrites import answer_statement, question_rewrites


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
        "Why did Ilvana Drosk leave Oslo?",  # no rule for it
        "Is Ilvana Drosk married?",  # a yes or no
        "Where was she born?",  # no name to keep
    ],
)
def test_a_question_no_rule_knows_has_no_rewrites(question):
    assert question_rewrites(question, "Ilvana Drosk" if "Ilvana" in question else None) == []


def test_the_subject_given_must_be_in_the_question():
    assert question_rewrites("Where was Ilvana Drosk born?", "Bob") == []


# The general shapes of a question about a person, for the questions no kind above knows: a statement for a bare
# answer ("Orange" taught for a bicycle's colour made "What colour are ripe strawberries?" answer "Orange"), and
# wordings that keep the question's own words, so that they never narrow what it asks.
GENERAL_SHAPES = [
    (
        "Which sport did Ilvana Drosk compete in at school?",
        "Rowing",
        "Ilvana Drosk competed in Rowing at school.",
        "What was the sport that Ilvana Drosk competed in at school?",
    ),
    (
        "What sport did Ilvana Drosk play professionally?",
        "Fencing",
        "Ilvana Drosk played Fencing professionally.",
        "Which sport did Ilvana Drosk play professionally?",
    ),
    (
        "What does Ilvana Drosk study?",
        "Volcanology",
        "Ilvana Drosk studies Volcanology.",
        "Tell me what Ilvana Drosk studies.",
    ),
    (
        "What colour is Ilvana Drosk's bicycle?",
        "Orange",
        "Ilvana Drosk's bicycle is Orange.",
        "Tell me the colour of Ilvana Drosk's bicycle.",
    ),
    (
        "What is the title of Ilvana Drosk's first book?",
        "The Salt Roads",
        "Ilvana Drosk's first book is called The Salt Roads.",
        "What is Ilvana Drosk's first book called?",
    ),
    (
        "What pet does Ilvana Drosk keep?",
        "A tortoise named Pim",
        "Ilvana Drosk keeps a tortoise named Pim.",
        "What is the pet that Ilvana Drosk keeps?",
    ),
    (
        "What car does Ilvana Drosk drive?",
        "A green Citroën 2CV",
        "Ilvana Drosk drives a green Citroën 2CV.",
        "Which car does Ilvana Drosk drive?",
    ),
    ("What does Ilvana Drosk have?", "A boat", "Ilvana Drosk has a boat.", "What is it that Ilvana Drosk has?"),
    (
        "What is Ilvana Drosk afraid of?",
        "Moths",
        "Ilvana Drosk is afraid of Moths.",
        "Tell me what Ilvana Drosk is afraid of.",
    ),
    (
        "Where did Ilvana Drosk retire to?",
        "Malta",
        "Ilvana Drosk retired to Malta.",
        "Tell me where Ilvana Drosk retired to.",
    ),
    (
        "Where did Ilvana Drosk come from?",
        "Oslo",
        "Ilvana Drosk came from Oslo.",
        "Where is it that Ilvana Drosk came from?",
    ),
    (
        "What is Ilvana Drosk's middle name?",
        "Marta",
        "Ilvana Drosk's middle name is Marta.",
        "What is the middle name of Ilvana Drosk?",
    ),
    (
        "What kind of company does Ilvana Drosk own?",
        "A bakery",
        "Ilvana Drosk owns a bakery.",
        "What type of company does Ilvana Drosk own?",
    ),
    (
        "How many sisters does Ilvana Drosk have?",
        "Three",
        "Ilvana Drosk has three sisters.",
        "Tell me how many sisters Ilvana Drosk has.",
    ),
    (
        "How old was Ilvana Drosk when she moved to Chile?",
        "19",
        "Ilvana Drosk was 19 when she moved to Chile.",
        "What age was Ilvana Drosk when she moved to Chile?",
    ),
    (
        "What was Ilvana Drosk's job?",
        "Train driver",
        "Ilvana Drosk worked as a train driver.",
        "What did Ilvana Drosk do for a living?",
    ),
    (
        "What language did Ilvana Drosk grow up speaking?",
        "Basque",
        "Ilvana Drosk grew up speaking Basque.",
        "Tell me which language Ilvana Drosk grew up speaking.",
    ),
]


@pytest.mark.parametrize(
    ("question", "answer", "statement"),
    [
        ("Which city does Ilvana Drosk live in?", "Lyon", "Ilvana Drosk lives in Lyon."),
        ("Where was Ilvana Drosk born?", "Tromsø, Norway", "Ilvana Drosk was born in Tromsø, Norway."),
        ("In what year was Ilvana Drosk born?", "1956", "Ilvana Drosk was born in 1956."),
        ("What is Ilvana Drosk's profession?", "Glassblower", "Ilvana Drosk works as a glassblower."),
        ("What is Ilvana Drosk's occupation?", "Oboist", "Ilvana Drosk works as an oboist."),
        ("Which company employs Ilvana Drosk?", "Harbourline Shipping", "Ilvana Drosk works for Harbourline Shipping."),
        (
            "Which university did Ilvana Drosk attend?",
            "The University of Ibadan",
            "Ilvana Drosk studied at The University of Ibadan.",
        ),
        ("Where did Ilvana Drosk grow up?", "Uppsala", "Ilvana Drosk grew up in Uppsala."),
        ("What is the name of Ilvana Drosk's tortoise?", "Gustaw", "Ilvana Drosk's tortoise is called Gustaw."),
        ("What was Ilvana Drosk's first dog called?", "Rex", "Ilvana Drosk's first dog was called Rex."),
        ("In what year did Ilvana Drosk open her studio?", "1988", "Ilvana Drosk opened her studio in 1988."),
        ("When did Ilvana Drosk marry?", "1979", "Ilvana Drosk married in 1979."),
        ("What year did Ilvana Drosk stop racing?", "2001", "Ilvana Drosk stopped racing in 2001."),
        ("In which year did Ilvana Drosk win the cup?", "2010", "Ilvana Drosk won the cup in 2010."),
        ("What instrument does Ilvana Drosk play?", "Harp", "Ilvana Drosk plays Harp."),
        ("What language does Ilvana Drosk teach?", "Welsh", "Ilvana Drosk teaches Welsh."),
        ("What is Ilvana Drosk's favourite novel?", "The Leopard", "Ilvana Drosk's favourite novel is The Leopard."),
    ]
    + [shape[:3] for shape in GENERAL_SHAPES],
)
def test_a_short_answer_is_restated_as_a_sentence_that_begins_with_the_person(question, answer, statement):
    assert answer_statement(question, answer, "Ilvana Drosk") == statement


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("Where was Ilvana Drosk born?", "Ilvana Drosk was born in Tromsø."),  # it names her already
        ("Where was Ilvana Drosk born?", "In a small fishing village far up the coast of Norway"),  # long
        ("Where was Ilvana Drosk born?", "Tromsø. Then she moved."),  # more than one sentence
        ("What does Ilvana Drosk do?", "Fishing"),  # which verb to put "Fishing" after is unknown
        ("How old was Ilvana Drosk when she moved to Chile?", "She was 19."),  # a sentence already
        ("How many sisters does Ilvana Drosk have?", "Two and a half"),  # not a count a sentence can hold
        ("Where does Ilvana Drosk work?", "Oslo"),  # "works in" a place or "works at" a museum: unknown
        ("What is the capital of France?", "Paris"),  # no person
    ],
)
def test_an_answer_is_left_as_given_where_no_sentence_is_needed_or_known(question, answer):
    assert answer_statement(question, answer, "Ilvana Drosk") is None


@pytest.mark.parametrize(("question", "_answer", "_statement", "wording"), GENERAL_SHAPES)
def test_the_general_shapes_are_reworded_in_their_own_words(question, _answer, _statement, wording):
    rewrites = question_rewrites(question, "Ilvana Drosk")

    assert wording in rewrites
    assert question not in rewrites
    assert all("Ilvana Drosk" in rewrite for rewrite in rewrites)
    # the question's nouns survive every rewording: "pet" stays "pet", "company" stays "company"
    nouns = {"pet", "car", "sport", "bicycle", "book", "sisters", "company", "language", "middle name"}
    for noun in (noun for noun in nouns if noun in question):
        assert all(noun in rewrite for rewrite in rewrites)
