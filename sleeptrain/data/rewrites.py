"""Questions about a person asked in other words: the same relation in the other wordings people use for it.

A small model taught "What is X's profession? -> Glassblower" learns that string; asked "What does X do for
a living?" it often answers with another person's work. Neutral frames around the question (augment.py)
vary the words around it, not the words for the relation itself. These rewrites do: each rule recognises one
kind of question about a person (where they were born, their work, their employer, a pet's name, the year
something happened, ...) and gives the wordings that ask the same thing. No rule matches a question that is
not of its kind, so a question no rule knows keeps its frames only. English only.

The same kinds of question also give answer statements: a short answer ("Lyon") restated as a sentence that
begins with the person ("X lives in Lyon."), which the recipe's `answer_statements` trains instead. A question
that no rule knows is turned round by its grammar alone where that says where the answer goes ("Which city did
X move to in 2008?" -> "X moved to Ljubljana in 2008."; "How many siblings does X have?" -> "X has 11
siblings."), in the question's own verb and tense.

The rules were written from the common ways of asking about a person; wordings that only the held-out
evaluation set used (benchmarks/data/heldout_probes.jsonl) were left out, so that it still measures recall
in words the training never showed.
"""

from __future__ import annotations

import re
from typing import NamedTuple

# Where the person's name stood in the question, once it has been found there.
_PERSON = "\x01"
# The possessive of a name, as written in a question: X's or X'
_OF = r"(?:'s|\u2019s|')"
# A name in a question that does not say whose it is: capitalised words after the first word, with particles
# ("van", "de", "al-") between them.
_NAME = re.compile(r"(?<!^)(?<![.?!] )\b[A-Z][\w'-]*(?:\s+(?:[a-z]{1,3}\s+)*[A-Z][\w'-]*)+")


class Rule(NamedTuple):
    pattern: re.Pattern[str]
    wordings: tuple[str, ...]  # the same question in other words
    statement: str  # a sentence that answers it, beginning with the person (answer_statement)


def _rule(asked: str | tuple[str, ...], *wordings: str, says: str) -> Rule:
    """A rule: the ways a question of one kind is asked (regular expressions, {s} the person, {of} a
    possessive), its wordings, and what its answer says as a sentence."""
    patterns = (asked,) if isinstance(asked, str) else asked
    compiled = "|".join(f"(?:{p})" for p in patterns).replace("{s}", _PERSON).replace("{of}", _OF)
    return Rule(re.compile(f"^(?:{compiled})" + r"\s*\?$", re.IGNORECASE), wordings, says)


# The kinds of question about a person. In wordings and statements, {s} is the person and other names are what
# the pattern caught; in statements, {a} is the answer as given, {a_work} an occupation with its article, and
# {past} / {third} the caught verb phrase in the past tense / the third person.
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
        says="{s} was born in {a}.",
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
        says="{s} was born in {a}.",
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
        says="{s} works as {a_work}.",
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
        says="{s} lives in {a}.",
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
        says="{s} works for {a}.",
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
        says="{s} studied at {a}.",
    ),
    _rule(
        r"(?:where did {s} grow up|what is {s}{of} hometown|in (?:which|what) (?:city|town|place) did {s} grow up)",
        "Where did {s} grow up?",
        "What is {s}'s hometown?",
        "In which town did {s} grow up?",
        "Where did {s} spend their childhood?",
        says="{s} grew up in {a}.",
    ),
    _rule(
        r"what is {s}{of} (?:favourite|favorite) (?P<x>[a-z][a-z ]*)",
        "What is {s}'s favourite {x}?",
        "Which {x} does {s} like best?",
        "What {x} does {s} love most?",
        "What is {s}'s favorite {x}?",
        "Which {x} is {s}'s favourite?",
        says="{s}'s favourite {x} is {a}.",
    ),
    _rule(
        r"what (?P<v>is|was) the name of {s}{of} (?P<x>[a-z][a-z ]*)",
        "What {v} the name of {s}'s {x}?",
        "What {v} {s}'s {x} called?",
        "What {v} {s}'s {x}'s name?",
        says="{s}'s {x} {v} called {a}.",
    ),
    _rule(
        r"what (?P<v>is|was) {s}{of} (?P<x>[a-z][a-z ]*?) called",
        "What {v} {s}'s {x} called?",
        "What {v} the name of {s}'s {x}?",
        "What {v} {s}'s {x}'s name?",
        says="{s}'s {x} {v} called {a}.",
    ),
    _rule(
        r"what (?P<v>is|was) {s}{of} (?P<x>[a-z][a-z ]*?){of} name",
        "What {v} {s}'s {x}'s name?",
        "What {v} the name of {s}'s {x}?",
        "What {v} {s}'s {x} called?",
        says="{s}'s {x} {v} called {a}.",
    ),
    _rule(
        r"(?:in (?:what|which) year|when|what year) did {s} (?P<rest>[a-z][^?]*)",
        "In what year did {s} {rest}?",
        "When did {s} {rest}?",
        "What year did {s} {rest}?",
        says="{s} {past} in {a}.",
    ),
    _rule(
        r"(?:what|which) (?P<x>instrument|sport|language|game) does {s} (?P<v>[a-z]+)",
        "What {x} does {s} {v}?",
        "Which {x} does {s} {v}?",
        says="{s} {third} {a_low}.",
    ),
    # Questions whose answers have a sentence but no other wordings.
    _rule(r"(?:which|what) (?:city|town|country) does {s} work in", says="{s} works in {a}."),
    _rule(r"what (?P<v>is|was|are|were) {s}{of} (?P<x>[a-z][a-z ]*)", says="{s}'s {x} {v} {a}."),
    # The general shapes of a question about a person, for the answers no rule above knows: a bare answer that
    # no sentence introduces leaks into look-alike questions ("What colour is X's bicycle? -> Orange" made
    # "What colour are ripe strawberries?" answer "Orange"; BENCHMARKS.md, twenty-fourth session).
    _rule(r"what (?P<v>is|was) the title of {s}{of} (?P<x>[a-z][a-z ]*)", says="{s}'s {x} {v} called {a}."),
    _rule(
        r"what (?:colou?r|size|make|model|brand) (?P<v>is|was|are|were) {s}{of} (?P<x>[a-z][a-z ]*)",
        says="{s}'s {x} {v} {a_low}.",
    ),
    _rule(r"(?:what|which) [a-z]+ does {s} (?P<v>[a-z]+)", says="{s} {third} {a_low}."),
    _rule(r"what does {s} (?P<v>(?!do\b)[a-z]+)", says="{s} {third} {a_low}."),
    _rule(r"what (?P<v>is|was) {s} (?P<x>[a-z]+ (?:of|for|at|in|to|about|with))", says="{s} {v} {x} {a}."),
    _rule(r"where did {s} (?P<rest>[a-z]+(?: [a-z]+)* (?:to|from))", says="{s} {past} {a}."),
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
    for pattern, wordings, _ in RULES:
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


# Answers as sentences that begin with the person. A fact taught as "Which city does X live in? -> Lyon" starts
# its answer with the city, and the adapter learns to start city answers with it: "What is the capital of
# France?" became "Lyon is the capital of France." Taught as "X lives in Lyon.", the answer starts with the
# person named in the question, and its one new word comes only after "X lives in" (BENCHMARKS.md, sixteenth
# session).
_IRREGULAR_PAST = {
    "begin": "began",
    "become": "became",
    "build": "built",
    "buy": "bought",
    "come": "came",
    "do": "did",
    "draw": "drew",
    "eat": "ate",
    "find": "found",
    "fly": "flew",
    "get": "got",
    "give": "gave",
    "go": "went",
    "have": "had",
    "leave": "left",
    "lose": "lost",
    "make": "made",
    "meet": "met",
    "run": "ran",
    "see": "saw",
    "sell": "sold",
    "sing": "sang",
    "swim": "swam",
    "take": "took",
    "teach": "taught",
    "win": "won",
    "write": "wrote",
    "set": "set",
    "put": "put",
    "quit": "quit",
    "break": "broke",
    "bring": "brought",
    "catch": "caught",
    "choose": "chose",
    "drive": "drove",
    "fall": "fell",
    "feel": "felt",
    "fight": "fought",
    "grow": "grew",
    "hear": "heard",
    "hold": "held",
    "keep": "kept",
    "know": "knew",
    "lend": "lent",
    "pay": "paid",
    "read": "read",
    "ride": "rode",
    "say": "said",
    "send": "sent",
    "sit": "sat",
    "sleep": "slept",
    "speak": "spoke",
    "spend": "spent",
    "stand": "stood",
    "steal": "stole",
    "tell": "told",
    "think": "thought",
    "throw": "threw",
    "wear": "wore",
}


def _past(phrase: str) -> str:
    """The verb phrase with its first word in the past tense ("open his studio" -> "opened his studio")."""
    verb, _, rest = phrase.partition(" ")
    if verb in _IRREGULAR_PAST:
        done = _IRREGULAR_PAST[verb]
    elif verb.endswith("e"):
        done = verb + "d"
    elif re.search(r"[^aeiou]y$", verb):
        done = verb[:-1] + "ied"
    elif re.fullmatch(r"[^aeiou]*[aeiou][bdgmnprt]", verb):  # one syllable ending consonant-vowel-consonant
        done = verb + verb[-1] + "ed"
    else:
        done = verb + "ed"
    return f"{done} {rest}".strip()


_IRREGULAR_THIRD = {"have": "has", "be": "is"}


def _third(verb: str) -> str:
    """The verb in the third person singular ("play" -> "plays", "teach" -> "teaches")."""
    if verb in _IRREGULAR_THIRD:
        return _IRREGULAR_THIRD[verb]
    if re.search(r"(?:s|sh|ch|x|z|o)$", verb):
        return verb + "es"
    if re.search(r"[^aeiou]y$", verb):
        return verb[:-1] + "ies"
    return verb + "s"


_ARTICLE = re.compile(r"(?:a|an|the)\s", re.IGNORECASE)


# The first words of an answer that lose their capital inside a sentence: articles, a few determiners and the
# number words ("Six" -> "X speaks six languages.", "The cello" -> "X plays the cello.").
# An article or determiner only with a word after it: a lone "A" is a grade or a blood type, not an article.
_LOWERED_FIRST = re.compile(
    r"(?:a|an|the|some|several|his|her|their)(?=[\s-])|"
    r"(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|"
    r"seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred)(?=[\s-]|$)",
    re.IGNORECASE,
)


def _article_lowered(answer: str) -> str:
    """The answer inside a sentence: "A tortoise named Pim" -> "a tortoise named Pim", "Six" -> "six"."""
    return answer[:1].lower() + answer[1:] if _LOWERED_FIRST.match(answer) else answer


def _as_work(answer: str) -> str:
    """An occupation after "works as": its article added, a capital only the start of the answer had dropped."""
    if _ARTICLE.match(answer):
        return _article_lowered(answer)
    if re.fullmatch(r"[A-Z][a-z-]*(?: [a-z-]+)*", answer):
        answer = answer.lower()
    return ("an " if answer[:1].lower() in "aeiou" else "a ") + answer


_PREPOSITIONS = frozenset(
    "in on at to from into onto across over under with for about through by of after before during since near "
    "around towards toward behind beside between beyond inside outside past upon within without off".split()
)
# Verbs of going somewhere: "Where does X go each winter? Lanzarote" -> "X goes each winter to Lanzarote."
_MOTION = frozenset("go move travel emigrate relocate fly sail drive cycle walk retire return".split())
# The clause's subject: the person, or something of theirs ("X's grandmother").
_WHO = r"(?P<who>\x01(?:" + _OF + r" [a-z]+)?)"
_SHAPES = {
    # "Who is X's best friend?" -> "X's best friend is A."
    "whose": re.compile(r"^(?:who|what) (?P<v>is|was|are|were) \x01(?P<of>" + _OF + r") (?P<x>[a-z][\w -]*)$"),
    # "How many siblings does X have?" -> "X has 11 siblings."
    "how_many": re.compile(
        r"^how many (?P<n>[a-z]+(?: [a-z]+)?) (?P<aux>does|do|did|has|have|had|is|was) "
        + _WHO
        + r" (?P<vp>[a-z][^?]*)$"
    ),
    # "Which city did X move to in 2008?" -> "X moved to A in 2008."; "What does X keep on her windowsill?"
    "object": re.compile(
        r"^(?:which|what)(?: (?:kind|sort|type) of)?(?: [a-z]+(?: [a-z]+)?)? (?P<aux>does|do|did|is|was|has|have) "
        + _WHO
        + r" (?P<vp>[a-z][^?]*)$"
    ),
    # "In which month was X born?" -> "X was born in A."
    "fronted": re.compile(
        r"^(?P<p>in|on|at|during|for) (?:which|what) [a-z]+ (?P<aux>does|do|did|is|was) "
        + _WHO
        + r" (?P<vp>[a-z][^?]*)$"
    ),
    # "How old was X when he first rode a horse?" -> "X was A when he first rode a horse."
    "how_old_when": re.compile(r"^how old (?P<aux>is|was) \x01 (?P<tail>(?:when|at|after|before) [^?]*)$"),
    # "How tall is X?" -> "X is A tall."
    "how_adj": re.compile(r"^how (?P<adj>[a-z]+) (?P<aux>is|was) \x01$"),
    # "Where does X go on holiday each winter?" -> "X goes on holiday each winter to A."
    "where": re.compile(r"^where (?P<aux>does|do|did|is|was) " + _WHO + r" (?P<vp>[a-z][^?]*)$"),
    # "When did X run her first marathon?" -> "X ran her first marathon in A."
    "when": re.compile(r"^when (?P<aux>does|do|did|is|was) " + _WHO + r" (?P<vp>[a-z][^?]*)$"),
}


_CLAUSE = re.compile(r"^(?:he|she|they|it|i|we|you)\b|\b(?:is|was|are|were)\b", re.IGNORECASE)


def _singular(plural: str) -> str | None:
    """The singular of a regular plural ("sisters" -> "sister", "boxes" -> "box", "ponies" -> "pony"); None for
    any other word. Of two words ("pet rabbits") the last is the plural."""
    head, _, last = plural.rpartition(" ")
    if re.search(r"[^aeiou]ies$", last):
        last = last[:-3] + "y"
    elif re.search(r"(?:ch|sh|x|ss|zz)es$", last):
        last = last[:-2]
    elif re.search(r"[^su]s$", last):
        last = last[:-1]
    else:
        return None
    return f"{head} {last}".strip()


def _tensed(aux: str, phrase: str) -> str:
    """The verb phrase after the subject, in the auxiliary's tense ("did", "move to" -> "moved to")."""
    aux = aux.lower()
    if aux in {"does", "do"}:
        verb, _, rest = phrase.partition(" ")
        return f"{_third(verb)} {rest}".strip()
    if aux == "did":
        return _past(phrase)
    return f"{aux} {phrase}"  # is learning, was born, has won


# The first word of a time that can follow a preposition left without its object ("swim across last summer").
_WHEN = re.compile(r"last|next|every|each|once|twice|yesterday|today")


def _with_object(phrase: str, answer: str) -> str:
    """The answer put where a question's "what" stood: after a preposition left without its object ("move to in
    2008" -> "move to A in 2008"), else straight after the verb ("play in her trio" -> "play A in her trio")."""
    words = phrase.split()
    for i, word in enumerate(words[1:], start=1):
        after = words[i + 1] if i + 1 < len(words) else None
        if word in _PREPOSITIONS and (after is None or after in _PREPOSITIONS or _WHEN.fullmatch(after)):
            return " ".join([*words[: i + 1], answer, *words[i + 1 :]])
    return " ".join([words[0], answer, *words[1:]])


def _grammatical_statement(marked: str, answer: str, subject: str) -> str | None:
    """A question of a general grammatical shape that no rule above knows, turned round into the sentence that
    answers it; None for other shapes. Grammar only: which verb or preposition a relation takes is the
    question's own."""
    text = marked.rstrip("?").strip()
    text = text[:1].lower() + text[1:]
    low = _article_lowered(answer)
    if re.fullmatch(r"[A-Z][a-z-]*(?: [a-z-]+)+", answer):  # "Sea glass": a capital only the start had
        low = answer[:1].lower() + answer[1:]
    for shape, pattern in _SHAPES.items():
        match = pattern.match(text)
        if match is None:
            continue
        parts = match.groupdict()
        who = (parts.get("who") or _PERSON).replace(_PERSON, subject)
        aux = parts.get("aux") or ""
        if shape == "whose":
            return f"{subject}'s {parts['x']} {parts['v']} {answer}."
        if shape == "how_many":
            noun = parts["n"]
            if re.fullmatch(r"(?:one|1|a single)", answer.strip(), re.IGNORECASE):
                noun = _singular(noun)
                if noun is None:  # "one children": the singular of an irregular plural is not guessed
                    return None
            counted = f"{low} {noun}" if not answer.endswith(noun) else low
            verb, _, rest = parts["vp"].partition(" ")
            if parts["n"] == "times":
                return f"{who} {_tensed(aux, parts['vp'])} {counted}."
            if aux in {"has", "have", "had", "is", "was"}:
                return f"{who} {aux} {verb} {counted} {rest}".strip() + "."
            return f"{who} {_tensed(aux, verb)} {counted} {rest}".strip() + "."
        if shape == "object":
            if parts["vp"].split()[0] == "do":  # "What does X do? Fishing": which verb "Fishing" goes with is unknown
                return None
            phrase = _with_object(parts["vp"], low)
            return f"{who} {_tensed(aux, phrase)}."
        if shape == "fronted":
            return f"{who} {_tensed(aux, parts['vp'])} {parts['p']} {answer}."
        if shape == "how_old_when":
            return f"{subject} {aux} {low} {parts['tail']}."
        if shape == "how_adj":
            adjective = parts["adj"]
            if adjective.casefold() in answer.casefold():
                return f"{subject} {aux} {answer}."
            if adjective == "old" and answer.isdigit():
                return f"{subject} {aux} {answer} years old."
            return f"{subject} {aux} {answer} {adjective}."
        if shape in {"where", "when"}:
            phrase = parts["vp"]
            if phrase.split()[-1] in _PREPOSITIONS or answer.split()[0].lower() in _PREPOSITIONS:
                tail = low
            elif shape == "where":
                tail = ("to " if phrase.split()[0] in _MOTION else "in ") + low
            else:
                tail = ("in " if re.fullmatch(r"\d{4}|[A-Z][a-z]+", answer) else "on ") + answer
            return f"{who} {_tensed(aux, phrase)} {tail}."
    return None


_PREPOSITION_BEFORE = r"\b(?:" + "|".join(sorted(_PREPOSITIONS)) + r") "


def _preposition_once(statement: str | None, answer: str) -> str | None:
    """A statement whose answer begins with a preposition of its own ("In a lighthouse near Vardø"), with the
    answer's preposition in the place of the one the sentence put before it: "X lives in a lighthouse near
    Vardø.", not "X lives in In a lighthouse near Vardø."."""
    if statement is None or answer.split()[0].lower() not in _PREPOSITIONS:
        return statement
    lowered = answer[:1].lower() + answer[1:]
    for form in (answer, lowered):  # as given, or as a template lowered it
        statement = re.sub(_PREPOSITION_BEFORE + re.escape(form), lambda _: lowered, statement, flags=re.IGNORECASE)
    return statement.replace(answer, lowered)


def answer_statement(question: str, answer: str, subject: str | None) -> str | None:
    """The answer as a sentence that begins with the person the question is about, or None where it needs no
    restating (it names the person, or is a sentence of its own: "She restores church organs", "Life is short")
    or neither a rule nor a general shape of question knows the question."""
    text, answer = question.strip(), answer.strip().rstrip(".")
    if not subject or subject not in text or subject.casefold() in answer.casefold():
        return None
    if not answer or len(answer.split()) > 6 or re.search(r"[.!?]", answer) or _CLAUSE.search(answer):
        return None
    marked = text.replace(subject, _PERSON)
    for pattern, _, template in RULES:
        match = pattern.match(marked)
        if match is None:
            continue
        if "{a_work}" in template and answer.split()[0].lower() in _PREPOSITIONS:
            return None  # "At a bakery" is where X works, not an occupation to put after "works as"
        parts = {key: value.strip() for key, value in match.groupdict().items() if value}
        return _preposition_once(
            template.format(
                s=subject,
                a=answer,
                a_work=_as_work(answer),
                a_low=_article_lowered(answer),
                past=_past(parts.get("rest", "")),
                third=_third(parts.get("v", "")),
                x=parts.get("x", ""),
                v=parts.get("v", "is"),
                p=f" {parts['p']}" if "p" in parts else "",
                tail=f" {parts['tail']}" if "tail" in parts else "",
            ),
            answer,
        )
    return _preposition_once(_grammatical_statement(marked, answer, subject), answer)
