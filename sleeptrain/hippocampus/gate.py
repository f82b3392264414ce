"""The gate: one incoming memory in, one decision out (store, reject or correct), with its importance and
reasons. It finds who the memory is about, gathers EVERY stored active memory about that subject, asks the
judge to read them, and applies the policy of the recipe's `hippocampus:` section.

Owns the decision policy and subject resolution; the reading of facts is the judges' (sleeptrain.judges).
May import sleeptrain.config, sleeptrain.judges, the hippocampus's own modules and the standard library.
"""

from __future__ import annotations

import re
from datetime import date

from sleeptrain.config import HippocampusConfig
from sleeptrain.hippocampus.memory import Memory, Verdict
from sleeptrain.hippocampus.store import MemoryStore
from sleeptrain.judges import Judge, Statement
from sleeptrain.judges.facts import infer_subject, same_person, strip_correction_cue, words

_PRONOUN = re.compile(r"\b(?:she|he|her|his|they|their|him)\b", re.IGNORECASE)


def has_correction_cue(memory: Memory) -> bool:
    """Whether the memory says it corrects something ("Correction: ...", "Actually, ...", "I was wrong: ...")."""
    return strip_correction_cue(memory.question if memory.question is not None else memory.text)[1] or (
        memory.answer is not None and strip_correction_cue(memory.answer)[1]
    )


def resolve_subject(memory: Memory, known: list[str], context: str | None = None) -> str | None:
    """Who the memory is about, named as the store already names them ("Ada" is "Ada Lindqvist" when only
    one stored subject fits). Without a given or written name, a memory that says "she" is about `context`
    (the subject of the memory before it)."""
    mention = memory.subject or infer_subject(memory.text, memory.question, memory.answer)
    if mention is None:
        return context if context and _PRONOUN.search(memory.text) else None
    exact = [s for s in known if s.casefold() == mention.casefold()]
    if exact:
        return exact[0]
    fits = [s for s in known if same_person(s, mention)]
    if len({s.casefold() for s in fits}) == 1:
        return fits[0]
    if len(fits) > 1 and context in fits:
        return context
    return mention.strip()


def decide(
    memory: Memory,
    store: MemoryStore,
    judge: Judge,
    config: HippocampusConfig,
    today: date | None = None,
    context_subject: str | None = None,
) -> Verdict:
    """Judge `memory` against everything stored about its subject. Sets memory.subject to the resolved subject
    (and, when a world-knowledge judge corrects the memory, its text); stores nothing."""
    today = today or date.today()
    active = store.active()
    known = list(dict.fromkeys(m.subject for m in active if m.subject))
    memory.subject = resolve_subject(memory, known, context_subject)
    if memory.subject is None:
        stored = [m for m in active if m.subject is None]
    else:
        stored = [m for m in active if m.subject is not None and same_person(m.subject, memory.subject)]
    assessment = judge.assess(_statement(memory), [_statement(m) for m in stored], today)
    judged = assessment.judgement
    importance = round(float(judged.importance), 3)
    scores = {
        "importance": importance,
        "novelty": round(assessment.novelty, 3),
        "surprise": round(assessment.surprise, 3),
        "content": round(assessment.content, 3),
    }
    reasons = list(assessment.notes)
    by_id = {m.id: m for m in stored}
    cue = has_correction_cue(memory)

    def verdict(decision: str, why: str, contradicts: list[str] | None = None, supersedes: str | None = None):
        return Verdict(decision, importance, [why, *reasons], contradicts or [], supersedes, scores)  # type: ignore[arg-type]

    if judged.is_chatter or assessment.content == 0:
        return verdict("reject", "no content: small talk, nothing to remember")
    if not judged.plausible:
        problems = "; ".join(judged.problems) or "the judge found it implausible"
        if judged.corrected_text and memory.question is None:
            memory.text = judged.corrected_text
            return verdict("correct", f"implausible ({problems}); stored as corrected by the judge")
        return verdict("reject", f"implausible: {problems}")
    if judged.contradicts:
        old = [by_id[i] for i in judged.contradicts if i in by_id]
        listed = "; ".join(f"{m.id} ({_short(m.text)})" for m in old) or ", ".join(judged.contradicts)
        if cue or config.on_conflict == "correct":
            newest = old[-1].id if old else judged.contradicts[-1]
            how = "explicit correction" if cue else "contradiction treated as a correction (hippocampus.on_conflict)"
            return verdict("correct", f"{how}: replaces {listed}", judged.contradicts, newest)
        return verdict(
            "reject",
            f"conflicts with {listed} and says nothing of correcting it (hippocampus.on_conflict: reject)",
            judged.contradicts,
        )
    if judged.duplicate_of:
        same = "; ".join(f"{i} ({_short(by_id[i].text)})" for i in judged.duplicate_of if i in by_id)
        return verdict("reject", f"duplicate: already stored as {same}")
    if importance < config.min_importance:
        return verdict("reject", f"unimportant: importance {importance:.2f} < {config.min_importance}")
    if cue:
        return verdict("store", "marked as a correction, but nothing stored contradicts it: stored as new")
    about = f" about {memory.subject}" if memory.subject else ""
    return verdict("store", f"novel and plausible{about}")


def _statement(memory: Memory) -> Statement:
    return Statement(memory.id, memory.text, memory.subject, memory.question, memory.answer)


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(words(text)) if len(text) > limit * 2 else text
    return text if len(text) <= limit else text[: limit - 1] + "…"
