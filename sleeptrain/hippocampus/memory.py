"""The typed objects that travel between the hippocampus, the memory store and sleep."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from sleeptrain.judges.facts import strip_correction_cue

Decision = Literal["store", "reject", "correct"]
Status = Literal["pending", "consolidated", "superseded", "rejected", "forgotten"]


@dataclass
class Memory:
    """One thing the model was told: free text, or a question with its answer."""

    id: str
    text: str  # free text, or for a fact "question answer" (what similarity and contradiction read)
    question: str | None = None
    answer: str | None = None
    subject: str | None = None
    source: str | None = None
    origin: str = ""  # file:line it came from, for messages
    created_at: float = 0.0  # unix seconds
    status: Status = "pending"
    decision: Decision | None = None
    reason: str = ""
    importance: float | None = None
    scores: dict[str, float] = field(default_factory=dict)
    supersedes: str | None = None  # the id of the memory this one corrected
    adapter_version: int | None = None  # the adapter version it was consolidated into

    @property
    def is_fact(self) -> bool:
        return self.question is not None and self.answer is not None

    def as_taught(self) -> Memory:
        """The memory as sleep teaches it: its text, question and answer without a leading correction cue
        ("Correction:", "Actually,"), which tells the hippocampus what the memory does to the store and is no
        part of the fact (taught with it, "Where was X born?" was answered "Correction: X was born in ...")."""

        def plain(text: str | None) -> str | None:
            return strip_correction_cue(text)[0] or text if text is not None else None

        return replace(
            self, text=plain(self.text) or self.text, question=plain(self.question), answer=plain(self.answer)
        )


@dataclass
class Verdict:
    """What the hippocampus decided about one incoming memory, and why."""

    decision: Decision
    importance: float
    reasons: list[str]
    contradicts: list[str] = field(default_factory=list)  # ids of stored memories it conflicts with
    supersedes: str | None = None  # for `correct`: the stored memory it replaces
    scores: dict[str, float] = field(default_factory=dict)
