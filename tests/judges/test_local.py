"""The offline judge with the real default model: what its closeness of wording may and may not call a repeat."""

from __future__ import annotations

from datetime import date

import pytest

from sleeptrain.judges.local import LocalJudge
from sleeptrain.judges.types import Statement

STORED = Statement("m-1", "Ann Quill keeps three owls named after rivers.", subject="Ann Quill")


@pytest.fixture
def judge(user_cache) -> LocalJudge:
    from sleeptrain.models import default_model_path

    return LocalJudge(model_path=str(default_model_path()))


def repeats(judge: LocalJudge, text: str) -> list[str]:
    new = Statement("m-2", text, subject="Ann Quill")
    return judge.assess(new, [STORED], date(2026, 12, 7)).judgement.duplicate_of


@pytest.mark.slow
def test_the_same_memory_again_is_a_repeat(judge):
    assert repeats(judge, "Ann Quill keeps three owls named after rivers.") == ["m-1"]


@pytest.mark.slow
def test_a_memory_that_adds_a_detail_is_no_repeat_however_close_its_wording(judge):
    # The model finds the two closer than the judge's duplicate threshold (0.9): the wording is nearly the same.
    new = Statement("m-2", "Ann Quill keeps three owls named after rivers in Lyon.", subject="Ann Quill")
    assert judge._similarities(new, [STORED])["m-1"] >= judge.duplicate_similarity

    assert repeats(judge, new.text) == []
