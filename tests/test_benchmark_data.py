"""The benchmarks' held-out data: every fact has the probes that score it, and no question the check asks is
one the training replays (a general question among the anchor prompts would measure memory, not locality)."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from sleeptrain.evaluation import keyword_match, read_probes
from tests.conftest import REPO_ROOT

BENCH_DATA = REPO_ROOT / "benchmarks" / "data"
GENERAL_FILES = [REPO_ROOT / "data" / "general_knowledge.jsonl", BENCH_DATA / "general_knowledge_more.jsonl"]


def read_rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# Every held-out set the benchmarks can name (benchmarks/choose_defaults.py finds them the same way).
SETS = sorted(path.name.removesuffix("_facts.jsonl") for path in BENCH_DATA.glob("*_facts.jsonl"))


@pytest.mark.parametrize("name", SETS)
def test_each_fact_has_a_direct_probe_its_answer_satisfies_and_a_reworded_one(name):
    facts = read_rows(BENCH_DATA / f"{name}_facts.jsonl")
    probes = read_probes(BENCH_DATA / f"{name}_probes.jsonl")
    assert len(facts) == 50
    assert len({fact["subject"] for fact in facts}) == 10
    direct = {probe.question: probe for probe in probes if probe.kind == "direct"}
    reworded = [probe for probe in probes if probe.kind == "paraphrase"]
    assert len(direct) == len(reworded) == 50
    for fact in facts:
        probe = direct[fact["question"]]
        assert keyword_match(fact["answer"], probe.keywords), fact
    assert not {probe.question for probe in reworded} & set(direct)


def test_the_held_out_sets_are_about_different_people():
    assert {"heldout", "second", "blind3", "blind4"} <= set(SETS)
    subjects = [{row["subject"] for row in read_rows(BENCH_DATA / f"{name}_facts.jsonl")} for name in SETS]
    assert len(set().union(*subjects)) == sum(len(people) for people in subjects)


def test_no_general_question_is_asked_twice_or_replayed_as_an_anchor():
    questions = [probe.question for path in GENERAL_FILES for probe in read_probes(path, kind="general")]
    assert len(questions) == 64
    assert not [q for q, n in Counter(q.lower() for q in questions).items() if n > 1]
    anchors = {row["prompt"].lower() for row in read_rows(REPO_ROOT / "data" / "anchors" / "prompts.jsonl")}
    assert not anchors & {q.lower() for q in questions}
