"""What a judge is asked about and what it answers: typed objects shared by every judge.

`MemoryAssessment` doubles as the JSON schema a remote judge must answer in (google-genai's
`response_schema`), so a model's answer is validated by pydantic before anything reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, Field


@dataclass(frozen=True)
class Statement:
    """A memory as a judge sees it: an id, its text, and (for a question with its answer) both parts."""

    id: str
    text: str
    subject: str | None = None
    question: str | None = None
    answer: str | None = None


class MemoryAssessment(BaseModel):
    """A judge's reading of one new memory against the stored memories about the same subject."""

    subject: str | None = Field(default=None, description="The person the new memory is about, if any.")
    is_chatter: bool = Field(default=False, description="Small talk with no content worth remembering.")
    plausible: bool = Field(default=True, description="False if it cannot be true (dates, ages, world facts).")
    problems: list[str] = Field(default_factory=list, description="Why it is implausible; empty if plausible.")
    duplicate_of: list[str] = Field(
        default_factory=list, description="Ids of stored memories that already say everything it says."
    )
    contradicts: list[str] = Field(
        default_factory=list, description="Ids of stored memories that cannot be true together with it."
    )
    importance: float = Field(default=0.5, description="0 (worthless) to 1 (core identity: names, dates, places).")
    corrected_text: str | None = Field(
        default=None, description="If it states a wrong world fact: the same memory with the fact corrected."
    )


class AnswerGrade(BaseModel):
    """A judge's reading of one answer against the expected one (for the evaluation)."""

    correct: bool = Field(description="Whether the answer states what the expected answer states.")
    reason: str = Field(default="", description="One short sentence.")


@dataclass
class Assessment:
    """A judge's full answer about a memory: the assessment plus the measurements behind it."""

    judgement: MemoryAssessment
    novelty: float = 1.0  # 1 - the highest similarity to a stored memory
    surprise: float = 0.5  # how unexpected the memory is to the model, 0..1
    content: float = 1.0  # how much it says, 0 (chatter) .. 1
    notes: list[str] = field(default_factory=list)  # what the judge wants the audit trail to say
    judge: str = ""
