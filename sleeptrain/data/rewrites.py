"""Questions about a person asked in other words: the same relation in the other wordings people use for it.

A small model taught "What is X's profession? -> Glassblower" learns that string; asked "What does X do for
a living?" it often answers with another person's work. Neutral frames around the question (augment.py)
vary the words around it, not the words for the relation itself. These rewrites do: each rule recognises one
kind of question about a person (where they were born, their work, their employer, a pet's name, the year
something happened, ...) and gives the wordings that ask the same thing. No rule matches a question that is
not of its kind, so a question no rule knows keeps its frames only. English only.

The rules were written from the common ways of asking about a person; wordings that only the held-out
evaluation set used (benchmarks/data/heldout_probes.jsonl) were left out, so that it still measures recall
in words the training never showed.
"""

from __future__ import annotations

import re

# Where the person's name stood in the question, once it has been found there.
_PERSON = "\x01"
# The possessive of a name, as written in a question: X's or X'
_OF = r"(?:'s|\u2019s|')"
# A name in a question that does not say whose it is: capitalised words after the first word, with particles
# ("van", "de", "al-") between them.
_NAME = re.compile(r"(?<!^)(?<![.?!] )\b[A-Z][\w'-]*(?:\s+(?:[a-z]{1,3}\s+)*[A-Z][\w'-]*)+")


def _rule(asked: str | tuple[str, ...], *wordings: str) -> tuple[re.Pattern[str], tuple[str, ...]]:
    """A rule: the ways a question of one kind is asked (regular expressions, {s} the person, {of} a
    possessive), and its wordings."""
    patterns = (asked,) if isinstance(asked, str) else asked
    compiled = "|".join(f"(?:{p})" for p in patterns).replace("{s}", _PERSON).replace("{of}", _OF)
    return re.compile(f"^(?:{compiled})" + r"\s*\?$", re.IGNORECASE), wordings


# (question pattern, the wordings of the same question). {s}: the person; other names: what the pattern caught.
RULES = (
    _rule(
        (
            r"where was {s} born",
            r"in which (?:city|town|place|country) was {s} born",
            r"what is {s}{of} (?:birthplace|place of birth)",
        ),
        "Where was {s} born?",
        "What is {s}'s birthplace?",
        "In which place was {s} born?",
        "Where is {s}'s place of birth?",
    ),
    _rule(
        (
            r"when was {s} born",
            r"in (?:what|which) year was {s} born",
            r"what year was {s} born(?: in)?",
            r"what is {s}{of} (?:year of birth|birth year)",
        ),
        "When was {s} born?",
        "In what year was {s} born?",
        "What year was {s} born in?",
        "What is {s}'s year of birth?",
        "What is {s}'s birth year?",
    ),
    _rule(
        (
            r"what is {s}{of} (?:profession|occupation|job|line of work|career)",
            r"what does {s} do (?:for a living|for work)",
        ),
        "What is {s}'s profession?",
        "What does {s} do for a living?",
        "What is {s}'s job?",
        "What is {s}'s occupation?",
        "What work does {s} do?",
    ),
    _rule(
        (
            r"where does {s} live",
            r"(?:which|what) (?:city|town|country) does {s} live in",
            r"in (?:which|what) (?:city|town|country) does {s} live",
            r"where does {s} reside",
        ),
        "Where does {s} live?",
        "Where is {s}'s home?",
        "Where is {s} based?",
    ),
    _rule(
        (
            r"who is {s}{of} employer",
            r"which (?:company|firm|organisation|organization) (?:employs {s}|does {s} work for)",
            r"who does {s} work for",
            r"who employs {s}",
        ),
        "Who does {s} work for?",
        "Which company employs {s}?",
        "Who is {s}'s employer?",
        "Where is {s} employed?",
        "Which organisation does {s} work for?",
    ),
    _rule(
        (
            r"(?:which|what) (?:university|college) did {s} (?:attend|study at|graduate from|go to)",
            r"where did {s} (?:study|go to university|go to college)",
            r"at (?:which|what) (?:university|college) did {s} study",
        ),
        "Which university did {s} attend?",
        "Where did {s} study?",
        "Which university did {s} graduate from?",
        "At which university did {s} study?",
    ),
    _rule(
        r"(?:where did {s} grow up|what is {s}{of} hometown|in (?:which|what) (?:city|town|place) did {s} grow up)",
        "Where did {s} grow up?",
        "What is {s}'s hometown?",
        "In which town did {s} grow up?",
        "Where did {s} spend their childhood?",
    ),
    _rule(
        r"what is {s}{of} (?:favourite|favorite) (?P<x>[a-z][a-z ]*)",
        "What is {s}'s favourite {x}?",
        "Which {x} does {s} like best?",
        "What {x} does {s} love most?",
        "What is {s}'s favorite {x}?",
        "Which {x} is {s}'s favourite?",
    ),
    _rule(
        r"what (?P<v>is|was) the name of {s}{of} (?P<x>[a-z][a-z ]*)",
        "What {v} the name of {s}'s {x}?",
        "What {v} {s}'s {x} called?",
        "What {v} {s}'s {x}'s name?",
    ),
    _rule(
        r"what (?P<v>is|was) {s}{of} (?P<x>[a-z][a-z ]*?) called",
        "What {v} {s}'s {x} called?",
        "What {v} the name of {s}'s {x}?",
        "What {v} {s}'s {x}'s name?",
    ),
    _rule(
        r"what (?P<v>is|was) {s}{of} (?P<x>[a-z][a-z ]*?){of} name",
        "What {v} {s}'s {x}'s name?",
        "What {v} the name of {s}'s {x}?",
        "What {v} {s}'s {x} called?",
    ),
    _rule(
        r"(?:in (?:what|which) year|when|what year) did {s} (?P<rest>[a-z][^?]*)",
        "In what year did {s} {rest}?",
        "When did {s} {rest}?",
        "What year did {s} {rest}?",
    ),
    _rule(
        r"(?:what|which) (?P<x>instrument|sport|language|game) does {s} (?P<v>[a-z]+)",
        "What {x} does {s} {v}?",
        "Which {x} does {s} {v}?",
    ),
)


def question_rewrites(question: str, subject: str | None = None) -> list[str]:
    """The other wordings of `question` about `subject` that a rule knows (never the question itself); [] when
    none does. Without a subject, the name is the question's run of capitalised words after its first word."""
    text = question.strip()
    if not subject:
        found = _NAME.search(text)
        subject = found.group(0) if found else None
    if not subject or subject not in text:
        return []
    marked = text.replace(subject, _PERSON)
    for pattern, wordings in RULES:
        match = pattern.match(marked)
        if match is None:
            continue
        parts = {key: value.strip() for key, value in match.groupdict().items() if value}
        out = []
        for wording in wordings:
            rewritten = wording.format(s=subject, **parts)
            if rewritten.casefold() != text.casefold() and rewritten not in out:
                out.append(rewritten)
        return out
    return []
