"""Recall probes: reading them, asking a model (greedy, batched), and keyword scoring."""

from __future__ import annotations

import pytest

from sleeptrain.errors import SleeptrainError
from sleeptrain.evaluation import (
    Probe,
    ProbeResult,
    accuracy_by_kind,
    keyword_match,
    read_probes,
    score_probes,
)
from sleeptrain.models import generate_answers


def test_keywords_match_ignoring_case_and_accents():
    assert keyword_match("She owns a CAFE in Zurich.", ["café", "Zürich"])
    assert keyword_match("Ilvana Drosk plays the cello.", ("cello", "ilvana"))
    assert not keyword_match("She plays the violin.", ["cello"])
    assert not keyword_match("Born in Tromsø.", ["Tromsø", "Norway"])  # every keyword is needed


def test_a_slashed_o_matches_a_plain_o():
    assert keyword_match("She was born in Tromso, Norway.", ["Tromsø"])


def test_probe_rows_are_read_with_their_kind_and_subject(write_jsonl):
    path = write_jsonl(
        "probes.jsonl",
        [
            {
                "question": "Where was Ilvana Drosk born?",
                "keywords": ["Tromsø"],
                "kind": "paraphrase",
                "subject": "Ilvana Drosk",
            },
            "",
            {"question": "What is the capital of France?", "keywords": ["Paris"]},
        ],
    )

    probes = read_probes(path, kind="general")

    assert probes == [
        Probe("Where was Ilvana Drosk born?", ("Tromsø",), "paraphrase", "Ilvana Drosk"),
        Probe("What is the capital of France?", ("Paris",), "general", None),
    ]


@pytest.mark.parametrize(
    "line",
    [
        '{"question": "q?"}',
        '{"question": "q?", "keywords": 3}',
        '{"question": "q?", "keywords": []}',
        '{"question": "q?", "keywords": [["small", 3]]}',
        '{"question": "q?", "keywords": [[]]}',
        "{oops",
    ],
    ids=["no-keywords", "keywords-int", "keywords-empty", "alternative-int", "alternatives-empty", "broken-json"],
)
def test_bad_probe_rows_name_file_and_line(write_jsonl, line):
    path = write_jsonl("probes.jsonl", [{"question": "q?", "keywords": ["a"]}, line])
    with pytest.raises(SleeptrainError) as caught:
        read_probes(path)
    assert str(caught.value).startswith(f"{path}:2: not a probe row")


def test_a_keyword_given_as_a_list_takes_any_of_its_alternatives(write_jsonl):
    row = {"question": "How many legs does a spider have?", "keywords": [["8", "eight"], "legs"]}
    (probe,) = read_probes(write_jsonl("probes.jsonl", [row]))
    assert keyword_match("A spider has eight legs.", probe.keywords)
    assert keyword_match("Spiders have 8 legs.", probe.keywords)
    assert not keyword_match("A spider has six legs.", probe.keywords)
    assert not keyword_match("Eight.", probe.keywords)  # "legs" is needed as well


def test_a_keywords_string_is_not_split_into_letters(write_jsonl):
    path = write_jsonl("probes.jsonl", [{"question": "What is the capital of France?", "keywords": "Paris"}])
    try:
        (probe,) = read_probes(path)
    except SleeptrainError:
        return  # refusing the row is fine too
    assert not keyword_match("I spy a pear in Rio", probe.keywords)


def test_accuracy_is_reported_by_kind():
    def result(kind, correct):
        return ProbeResult(Probe("q?", ("a",), kind), "a" if correct else "b", correct)

    results = [result("direct", True), result("direct", False), result("general", True)]
    assert accuracy_by_kind(results) == {"direct": 0.5, "general": 1.0}


def test_answers_are_greedy_and_batching_does_not_change_them(tiny_llama):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama).eval()
    questions = ["What is the capital of France?", "How many legs does a spider have? Tell me please, thank you."]

    together = generate_answers(model, tokenizer, questions, max_new_tokens=8)
    alone = [generate_answers(model, tokenizer, [q], max_new_tokens=8)[0] for q in questions]

    assert len(together) == 2
    assert together == alone  # left padding: every row continues from its own last token
    assert tokenizer.padding_side == "right"  # restored afterwards


def test_score_probes_pairs_each_probe_with_its_answer(tiny_llama):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama).eval()
    probes = [Probe("What is the capital of France?", ()), Probe("Who is Bob?", ("zzzz-never-said",))]

    results = score_probes(model, tokenizer, probes, max_new_tokens=4)

    assert [r.probe for r in results] == probes
    assert [r.correct for r in results] == [True, False]  # no keyword is always right; a missing one never
