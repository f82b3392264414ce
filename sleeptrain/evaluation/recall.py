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

# A keyword a right answer contains: a word, or alternatives of which any one will do ("small" or "little").
Keyword = str | tuple[str, ...]


@dataclass(frozen=True)
class Probe:
    question: str
    keywords: tuple[Keyword, ...]
    kind: str = "direct"
    subject: str | None = None


@dataclass
class ProbeResult:
    probe: Probe
    answer: str
    correct: bool
    extra: dict[str, Any] = field(default_factory=dict)


def _keywords(value: Any) -> tuple[Keyword, ...]:
    """A row's "keywords": one string, or a list whose items are strings or lists of alternatives."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise TypeError("'keywords' must be a string or a non-empty list")
    keywords: list[Keyword] = []
    for item in items:
        if isinstance(item, list) and item and all(isinstance(word, str) for word in item):
            keywords.append(tuple(item))
        elif isinstance(item, str):
            keywords.append(item)
        else:
            raise TypeError(f"a keyword must be a string or a non-empty list of strings, not {item!r}")
    return tuple(keywords)


def read_probes(path: Path, kind: str | None = None) -> list[Probe]:
    """Probe rows are {"question", "keywords": [...]} with optional "kind" and "subject"; a keyword given as a
    list is a set of alternatives ({"keywords": [["small", "little"]]})."""
    probes = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            keywords = _keywords(row["keywords"])
            probes.append(Probe(row["question"], keywords, row.get("kind", kind or "direct"), row.get("subject")))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise SleeptrainError(f"{path}:{number}: not a probe row ({exc})") from None
    return probes


# Letters that Unicode does not decompose into a base letter plus an accent.
_TRANSLITERATE = str.maketrans({"ø": "o", "æ": "ae", "œ": "oe", "ß": "ss", "ł": "l", "đ": "d", "þ": "th", "ı": "i"})


def _normalise(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold().translate(_TRANSLITERATE))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def keyword_match(answer: str, keywords: tuple[Keyword, ...] | list[Keyword]) -> bool:
    """Right when every keyword appears in the answer (one of them, for a keyword given as alternatives),
    ignoring case and accents."""
    said = _normalise(answer)
    return all(
        any(_normalise(word) in said for word in ((keyword,) if isinstance(keyword, str) else keyword))
        for keyword in keywords
    )


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
