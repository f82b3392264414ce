"""Recall probes: a question, the keywords a right answer contains, and what kind of probe it is
(direct, paraphrase, general). Answers are greedy generations through the chat template."""

from __future__ import annotations

import json
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sleeptrain.errors import SleeptrainError
from sleeptrain.models.generation import generate_answers


@dataclass(frozen=True)
class Probe:
    question: str
    keywords: tuple[str, ...]
    kind: str = "direct"
    subject: str | None = None


@dataclass
class ProbeResult:
    probe: Probe
    answer: str
    correct: bool
    extra: dict[str, Any] = field(default_factory=dict)


def read_probes(path: Path, kind: str | None = None) -> list[Probe]:
    """Probe rows are {"question", "keywords": [...]} with optional "kind" and "subject"."""
    probes = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            keywords = [row["keywords"]] if isinstance(row["keywords"], str) else row["keywords"]
            probes.append(
                Probe(row["question"], tuple(keywords), row.get("kind", kind or "direct"), row.get("subject"))
            )
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise SleeptrainError(f"{path}:{number}: not a probe row ({exc})") from None
    return probes


# Letters that Unicode does not decompose into a base letter plus an accent.
_TRANSLITERATE = str.maketrans({"ø": "o", "æ": "ae", "œ": "oe", "ß": "ss", "ł": "l", "đ": "d", "þ": "th", "ı": "i"})


def _normalise(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold().translate(_TRANSLITERATE))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def keyword_match(answer: str, keywords: tuple[str, ...] | list[str]) -> bool:
    """Right when every keyword appears in the answer, ignoring case and accents."""
    said = _normalise(answer)
    return all(_normalise(keyword) in said for keyword in keywords)


def score_probes(model: Any, tokenizer: Any, probes: list[Probe], **kwargs: Any) -> list[ProbeResult]:
    answers = generate_answers(model, tokenizer, [p.question for p in probes], **kwargs)
    return score_answers_to_probes(probes, answers)


def score_answers_to_probes(probes: list[Probe], answers: list[str]) -> list[ProbeResult]:
    """Each probe's answer (in the probes' order) scored by its keywords."""
    return [ProbeResult(p, a, keyword_match(a, p.keywords)) for p, a in zip(probes, answers, strict=True)]


def accuracy_by_kind(results: list[ProbeResult]) -> dict[str, float]:
    totals: dict[str, list[bool]] = defaultdict(list)
    for result in results:
        totals[result.probe.kind].append(result.correct)
    return {kind: round(sum(marks) / len(marks), 4) for kind, marks in totals.items()}
