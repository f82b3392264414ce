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
        "Which sport did Ilvana Drosk compete in at school?",  # no rule for it
        "Where does Ilvana Drosk work?",  # a place or an employer: too ambiguous to reword
        "Where was she born?",  # no name to keep
    ],
)
def test_a_question_no_rule_knows_has_no_rewrites(question):
    assert question_rewrites(question, "Ilvana Drosk" if "Ilvana" in question else None) == []


def test_the_subject_given_must_be_in_the_question():
    assert question_rewrites("Where was Ilvana Drosk born?", "Bob") == []


# The general shapes of a question about a person: statements only, for the answers no kind above knows. A bare
# "Orange" taught for a bicycle's colour made "What colour are ripe strawberries?" answer "Orange".
GENERAL_SHAPES = [
    ("Which sport did Ilvana Drosk compete in at school?", "Rowing", "Ilvana Drosk competed in Rowing at school."),
    ("What sport did Ilvana Drosk play professionally?", "Fencing", "Ilvana Drosk played Fencing professionally."),
    ("What does Ilvana Drosk study?", "Volcanology", "Ilvana Drosk studies Volcanology."),
    ("What colour is Ilvana Drosk's bicycle?", "Orange", "Ilvana Drosk's bicycle is Orange."),
    (
        "What is the title of Ilvana Drosk's first book?",
        "The Salt Roads",
        "Ilvana Drosk's first book is called The Salt Roads.",
    ),
    ("What pet does Ilvana Drosk keep?", "A tortoise named Pim", "Ilvana Drosk keeps a tortoise named Pim."),
    ("What car does Ilvana Drosk drive?", "A green Citroën 2CV", "Ilvana Drosk drives a green Citroën 2CV."),
    ("What does Ilvana Drosk have?", "A boat", "Ilvana Drosk has a boat."),
    ("What is Ilvana Drosk afraid of?", "Moths", "Ilvana Drosk is afraid of Moths."),
    ("Where did Ilvana Drosk retire to?", "Malta", "Ilvana Drosk retired to Malta."),
    ("Where did Ilvana Drosk come from?", "Oslo", "Ilvana Drosk came from Oslo."),
]


# Questions no rule knows, turned round by their grammar alone: the answer goes where the question's "what"
# stood, in the question's own verb and tense.
GRAMMATICAL_SHAPES = [
    ("Who is Ilvana Drosk's oldest friend?", "Piet Laarman", "Ilvana Drosk's oldest friend is Piet Laarman."),
    ("How many cousins does Ilvana Drosk have?", "9", "Ilvana Drosk has 9 cousins."),
    ("How many languages does Ilvana Drosk speak?", "Six", "Ilvana Drosk speaks six languages."),
    ("How many sisters does Ilvana Drosk have?", "One", "Ilvana Drosk has one sister."),  # one of them
    ("How many boxes has Ilvana Drosk packed?", "1", "Ilvana Drosk has packed 1 box."),
    ("How many pet ponies does Ilvana Drosk own?", "One", "Ilvana Drosk owns one pet pony."),
    ("Which grade did Ilvana Drosk get in chemistry?", "A", "Ilvana Drosk got A in chemistry."),  # no article
    ("How many looms does Ilvana Drosk own?", "Twenty-two", "Ilvana Drosk owns twenty-two looms."),
    ("How many kites has Ilvana Drosk built?", "40", "Ilvana Drosk has built 40 kites."),
    ("How many times has Ilvana Drosk sailed to Iceland?", "6", "Ilvana Drosk has sailed to Iceland 6 times."),
    ("Which town did Ilvana Drosk move to in 1999?", "Bergen", "Ilvana Drosk moved to Bergen in 1999."),
    ("What medal did Ilvana Drosk win in 2004?", "The Ross Medal", "Ilvana Drosk won the Ross Medal in 2004."),
    (
        "Which lake did Ilvana Drosk swim across last summer?",
        "Lake Bled",
        "Ilvana Drosk swam across Lake Bled last summer.",
    ),
    (
        "Which hill did Ilvana Drosk climb on her birthday?",
        "Ben Nevis",
        "Ilvana Drosk climbed Ben Nevis on her birthday.",
    ),
    (
        "What does Ilvana Drosk grow on her balcony?",
        "Cherry tomatoes",
        "Ilvana Drosk grows cherry tomatoes on her balcony.",
    ),
    ("What kind of boat does Ilvana Drosk own?", "A yawl", "Ilvana Drosk owns a yawl."),
    ("Which dialect is Ilvana Drosk studying?", "Sami", "Ilvana Drosk is studying Sami."),
    ("Which port did Ilvana Drosk's father sail from?", "Hull", "Ilvana Drosk's father sailed from Hull."),
    ("In which season was Ilvana Drosk married?", "Autumn", "Ilvana Drosk was married in Autumn."),
    ("How old was Ilvana Drosk when she learnt to swim?", "31", "Ilvana Drosk was 31 when she learnt to swim."),
    ("How old was Ilvana Drosk when she first sailed?", "Twelve", "Ilvana Drosk was twelve when she first sailed."),
    ("How tall is Ilvana Drosk?", "181 centimetres", "Ilvana Drosk is 181 centimetres tall."),
    ("How old is Ilvana Drosk?", "57", "Ilvana Drosk is 57 years old."),
    ("Where does Ilvana Drosk go every Easter?", "Crete", "Ilvana Drosk goes every Easter to Crete."),
    ("Where does Ilvana Drosk keep her bees?", "An allotment", "Ilvana Drosk keeps her bees in an allotment."),
    ("When did Ilvana Drosk sell her first painting?", "1987", "Ilvana Drosk sold her first painting in 1987."),
]


@pytest.mark.parametrize(("question", "answer", "statement"), GRAMMATICAL_SHAPES)
def test_a_question_no_rule_knows_is_turned_round_by_its_grammar(question, answer, statement):
    assert answer_statement(question, answer, "Ilvana Drosk") == statement


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
        ("What instrument does Ilvana Drosk play?", "The cello", "Ilvana Drosk plays the cello."),
        ("What is the name of Ilvana Drosk's boat?", "The Marigold", "Ilvana Drosk's boat is called The Marigold."),
        ("What language does Ilvana Drosk teach?", "Welsh", "Ilvana Drosk teaches Welsh."),
        ("What is Ilvana Drosk's favourite novel?", "The Leopard", "Ilvana Drosk's favourite novel is The Leopard."),
    ]
    + GENERAL_SHAPES,
)
def test_a_short_answer_is_restated_as_a_sentence_that_begins_with_the_person(question, answer, statement):
    assert answer_statement(question, answer, "Ilvana Drosk") == statement


@pytest.mark.parametrize(
    ("question", "answer", "statement"),
    [
        (
            "Where does Ilvana Drosk live?",
            "In a lighthouse near Vardø.",
            "Ilvana Drosk lives in a lighthouse near Vardø.",
        ),
        ("Where was Ilvana Drosk born?", "In Tromsø", "Ilvana Drosk was born in Tromsø."),
        ("Where did Ilvana Drosk grow up?", "On a farm", "Ilvana Drosk grew up on a farm."),
        ("When did Ilvana Drosk retire?", "In 2001", "Ilvana Drosk retired in 2001."),
        ("In which month was Ilvana Drosk born?", "In May", "Ilvana Drosk was born in May."),
        ("Where does Ilvana Drosk go each winter?", "To Lanzarote", "Ilvana Drosk goes each winter to Lanzarote."),
        ("Who does Ilvana Drosk work for?", "For the city council", "Ilvana Drosk works for the city council."),
        ("Where does Ilvana Drosk work?", "At the harbour office", "Ilvana Drosk works at the harbour office."),
        (
            "What is Ilvana Drosk's favourite place?",
            "In the garden",
            "Ilvana Drosk's favourite place is in the garden.",
        ),
    ],
)
def test_an_answer_that_brings_its_own_preposition_keeps_only_that_one(question, answer, statement):
    assert answer_statement(question, answer, "Ilvana Drosk") == statement


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("Where was Ilvana Drosk born?", "Ilvana Drosk was born in Tromsø."),  # it names her already
        ("Where was Ilvana Drosk born?", "In a small fishing village far up the coast of Norway"),  # long
        ("Where was Ilvana Drosk born?", "Tromsø. Then she moved."),  # more than one sentence
        ("What does Ilvana Drosk do?", "Fishing"),  # which verb to put "Fishing" after is unknown
        ("How old was Ilvana Drosk when she moved to Chile?", "She was 19."),  # a sentence already
        ("What does Ilvana Drosk do for a living?", "She restores church organs."),  # a sentence, on a rule's path
        ("What is Ilvana Drosk's favourite saying?", "Life is short"),  # a clause of its own
        ("What is Ilvana Drosk's job?", "At a bakery"),  # where she works, not an occupation for "works as"
        ("Who taught Ilvana Drosk to swim?", "Her uncle"),  # the person is not the one who did it
        ("How many bells hang in Ilvana Drosk's tower?", "8"),  # nor the subject of the sentence
        ("How many children does Ilvana Drosk have?", "One"),  # an irregular plural's singular is not guessed
        ("What is the capital of France?", "Paris"),  # no person
    ],
)
def test_an_answer_is_left_as_given_where_no_sentence_is_needed_or_known(question, answer):
    assert answer_statement(question, answer, "Ilvana Drosk") is None


@pytest.mark.parametrize("question", [question for question, _, _ in GENERAL_SHAPES])
def test_the_general_shapes_restate_answers_and_add_no_wordings(question):
    assert question_rewrites(question, "Ilvana Drosk") == []
