"""Rules that read facts out of short English statements about people: a relation lexicon that maps phrasings
to attributes ("was born in X", "her birthplace is X", "Where was Ada born? X" all give `birthplace`), value
extraction and normalisation, partial dates and their arithmetic, and the reality and contradiction checks
built on them.

Pure functions over strings and small dataclasses: no model, no I/O. Imports only the standard library.
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from dataclasses import dataclass
from datetime import date

# --------------------------------------------------------------------------------------------- lexicon

# Attributes a person has exactly one value of at a time: two different values contradict each other.
SINGLE_VALUED = {
    "birthplace",
    "birth_date",
    "death_date",
    "death_place",
    "age",
    "job",
    "employer",
    "spouse",
    "home",
    "children_count",
}
# favourite_<thing> is single-valued too; everything else (likes, plays, speaks, pet_<animal>, studied) may
# have several values, so a new value is compatible.

MONTHS = {name.lower(): number for number, name in enumerate(calendar.month_name) if name}
MONTHS.update({name.lower(): number for number, name in enumerate(calendar.month_abbr) if name})
MONTHS.pop("may", None)  # "may" is far more often the verb; the full month "May" is re-added below
MONTHS["may"] = 5
NUMBER_WORDS = {
    "no": 0,
    "zero": 0,
    "one": 1,
    "a": 1,
    "an": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
}

_UPPER = "A-ZÀ-ÖØ-ÞĀĂĄĆĈĊČĎĐĒĖĘĚĞĠĢĤĦĨĪĮİĲĴĶĹĻĽĿŁŃŅŇŊŌŐŒŔŖŘŚŜŞŠŢŤŦŨŪŬŮŰŲŴŶŸŹŻŽ"
_NAME_TOKEN = rf"[{_UPPER}][\w-]*(?:['’][{_UPPER}][\w-]*)?"
NAME = rf"{_NAME_TOKEN}(?:\s+(?:(?:van|von|de|da|del|der|di|du|le|la|al|bin|ibn)\s+)?{_NAME_TOKEN})*"
PRONOUN = r"[Ss]he|[Hh]e|[Tt]hey|I|[Hh]er|[Hh]is|[Tt]heir|[Mm]y|[Hh]im"
SUBJ = rf"(?P<subj>(?:{PRONOUN})\b|{NAME})"
POSS = r"(?:['’]s?)?"  # Ada's, James'
_STOP = r"(?=\s+(?:in|on|at|for|as|now|since|from|and|but|where|who|when|with|until|while|because|after|before|not)\b|[,.;!?()]|$)"  # noqa: E501
VAL = rf"(?P<val>[^,.;!?()]+?){_STOP}"
TITLED_VAL = rf"(?P<val>(?:the\s+)?{NAME}(?:\s+of\s+{NAME})?)"

# Capitalised words that start sentences or name months and days, never a person.
NOT_NAMES = {
    "the", "a", "an", "in", "on", "at", "when", "where", "what", "who", "which", "how", "why", "yes", "no",
    "she", "he", "they", "i", "her", "his", "their", "my", "it", "this", "that", "there", "correction",
    "actually", "update", "sorry", "also", "and", "but", "ok", "okay", "thanks", "thank", "hello", "hi", "hey",
    "today", "yesterday", "tomorrow", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
    "sunday", "note", "fact", "remember", "please", "just", "so", "well", "oh", "wait", "mr", "mrs", "ms", "dr",
    "born", "does", "did", "is", "was", "we", "you", "our", "your", "after", "before", "since", "by",
    *(name.lower() for name in calendar.month_name if name),
}  # fmt: skip

JOB_WORDS = {
    "nurse", "chef", "pilot", "doctor", "surgeon", "clerk", "judge", "monk", "cook", "poet", "nun", "priest",
    "chemist", "mechanic", "midwife", "vet", "architect", "detective", "farmer", "teacher", "lawyer", "dentist",
    "librarian", "accountant", "consultant", "student", "journalist", "physician", "scientist", "carpenter",
    "plumber", "electrician", "engineer", "translator", "programmer", "developer", "designer", "writer", "author",
    "actor", "actress", "singer", "painter", "sculptor", "photographer", "firefighter", "officer", "soldier",
    "sailor", "fisherman", "captain", "manager", "director", "professor", "lecturer", "researcher", "biologist",
    "historian", "economist", "analyst", "pharmacist", "therapist", "psychologist", "waiter", "barista", "tailor",
    "jeweller", "clockmaker", "watchmaker", "beekeeper", "glassblower", "cartographer", "blacksmith", "potter",
    "baker", "butcher", "banker", "broker", "diplomat", "ambassador", "violinist", "cellist", "pianist",
    "composer", "conductor", "astronomer", "geologist", "physicist", "mathematician", "veterinarian",
    "optician", "paramedic", "pharmacologist", "archaeologist", "linguist", "editor", "reporter", "shepherd",
    "gardener", "florist", "locksmith", "goldsmith", "illustrator", "animator", "curator", "archivist",
    "surveyor", "welder", "miner", "pastor", "rabbi", "imam", "coach", "trainer", "dancer", "musician",
    "novelist", "playwright", "filmmaker", "entrepreneur", "ceo", "founder", "inventor", "investor", "cashier",
    "receptionist", "secretary", "janitor", "driver", "courier", "ranger", "lifeguard", "zoologist", "botanist",
}  # fmt: skip
# Nouns after "is a" that are not jobs (family, diets, hobbies), so they never conflict with one.
NOT_JOBS = {
    "vegetarian", "vegan", "member", "fan", "believer", "lover", "owner", "mother", "father", "sister",
    "brother", "daughter", "son", "grandmother", "grandfather", "widow", "widower", "neighbour", "neighbor",
    "friend", "person", "man", "woman", "child", "twin", "citizen", "resident", "native", "descendant",
    "supporter", "reader", "collector", "runner", "swimmer", "cyclist", "climber", "hiker", "gamer", "smoker",
}  # fmt: skip
_HOBBY_ADJECTIVES = {"keen", "avid", "passionate", "amateur", "big", "huge", "great", "devoted", "enthusiastic"}
SYNONYMS = {"physician": "doctor", "attorney": "lawyer", "medic": "doctor", "instructor": "teacher"}

STOPWORDS = set(
    """a an the of in on at to for from by with and or but is are was were be been being has have had do does
    did this that these those it its as into about than then so very also just there here who whom whose which
    what when where why how not no yes i me my we our you your he him his she her they them their one s
    will would can could should may might must""".split()
)
# Words of the lexicon itself: they say which attribute a sentence is about, not what is new in it.
RELATION_WORDS = set(
    """born birth birthplace place hometown native date birthday died death passed away age old year years aged
    turned work works worked job profession occupation employed employer married marry husband wife spouse
    partner live lives lived home city town village resides reside based moved favourite favorite like likes
    loves love enjoys enjoy hobby hobbies plays play speaks speak named called name has have studied study
    graduated children kids does do living currently now still name currently originally""".split()
)
CHATTER_WORDS = set(
    """ok okay thanks thank thx ty hi hello hey bye goodbye lol haha hah sure yeah yep cool great nice good
    morning night evening cheers hmm um uh alright right got see later sounds fine awesome perfect wow oh ah
    please welcome np noted understood interesting really indeed true agree agreed lovely wonderful excellent
    sweet fun glad happy hear know mean guess well anyway much lot bit today talk chat soon again too""".split()
)

CORRECTION_CUE = re.compile(
    r"^\s*(?:correction\b|actually\b|i was wrong\b|sorry,? i meant\b|sorry,? i was wrong\b|let me correct\b|"
    r"to correct\b|i misspoke\b|update\b|scratch that\b|no wait\b|my mistake\b|that was wrong\b|"
    r"i made a mistake\b)[\s,:;.!-]*",
    re.IGNORECASE,
)


# --------------------------------------------------------------------------------------------- types


@dataclass(frozen=True)
class PartialDate:
    """A date of which any part may be unknown ("1962", "March 1962", "3 March")."""

    year: int | None = None
    month: int | None = None
    day: int | None = None

    def problem(self) -> str | None:
        if self.month is not None and not 1 <= self.month <= 12:
            return f"month {self.month} does not exist"
        if self.day is not None:
            if self.month is None:
                return None
            days = calendar.monthrange(self.year if self.year is not None else 2000, self.month)[1]
            if not 1 <= self.day <= days:
                month_name = calendar.month_name[self.month]
                year = f" {self.year}" if self.year is not None else ""
                return f"{self.day} {month_name}{year} does not exist"
        return None

    def compatible(self, other: PartialDate) -> bool:
        return all(a is None or b is None or a == b for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True))

    def as_tuple(self) -> tuple[int | None, int | None, int | None]:
        return (self.year, self.month, self.day)

    def after(self, day: date) -> bool:
        """Certainly after `day` (as far as the known parts say)."""
        if self.year is None:
            return False
        if self.year != day.year:
            return self.year > day.year
        if self.month is None or self.month != day.month:
            return self.month is not None and self.month > day.month
        return self.day is not None and self.day > day.day

    def before(self, other: PartialDate) -> bool:
        """Certainly before `other`."""
        for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True):
            if a is None or b is None:
                return False
            if a != b:
                return a < b
        return False

    def __str__(self) -> str:
        month = calendar.month_name[self.month] if self.month and 1 <= self.month <= 12 else ""
        if self.month and not month:
            month = f"month {self.month}"
        parts = [str(self.day) if self.day else "", month]
        parts.append(str(self.year) if self.year else "")
        return " ".join(p for p in parts if p)


@dataclass(frozen=True)
class Claim:
    """One (subject, attribute, value) read from a statement. `subject` is the name as written, or None where
    the statement says "she"/"I"/nothing (it is then about the memory's own subject)."""

    subject: str | None
    attribute: str
    value: str
    when: PartialDate | None = None  # for dates
    number: int | None = None  # for ages and counts


# --------------------------------------------------------------------------------------------- text helpers


def strip_correction_cue(text: str) -> tuple[str, bool]:
    """The text without a leading correction cue ("Correction:", "Actually,", "I was wrong:"), and whether
    it had one."""
    match = CORRECTION_CUE.match(text)
    if not match:
        return text, False
    rest = text[match.end() :]
    return (rest[:1].upper() + rest[1:]) if rest else rest, True


def sentences(text: str) -> list[str]:
    parts = re.split(r"(?<=[.!?;])\s+|\n+", text.strip())
    return [p.strip() for p in parts if p.strip()]


_CLAUSE_VERBS = (
    r"is|was|has|had|lives|lived|works|worked|plays|played|speaks|likes|loves|enjoys|married|moved|studied|"
    r"graduated|died|owns|became|turned|resides"
)


def clauses(sentence: str) -> list[str]:
    """The sentence, then each clause that continues it with a verb and no subject of its own ("Ada lives in
    Oslo and plays the cello" also gives "She plays the cello"): the subject is the memory's."""
    found = [sentence]
    # "Lena Fischer, a violinist, lives in Vienna": the aside is a statement of its own, and so is the rest.
    aside = re.search(rf"^(?P<name>{NAME})\s*,\s*(?P<aside>(?:a|an|born|aged)\b[^,]*),\s*(?P<rest>.+)$", sentence)
    if aside:
        verb = "is" if aside.group("aside").split()[0] in ("a", "an", "aged") else "was"
        found = [f"{aside.group('name')} {verb} {aside.group('aside')}", f"{aside.group('name')} {aside.group('rest')}"]
        sentence = found[-1]
    for match in re.finditer(rf"(?:,\s*|\s+)(?:and|but|while)\s+(?=(?:{_CLAUSE_VERBS})\b)", sentence):
        found.append("She " + sentence[match.end() :])
    return found


def stem(word: str) -> str:
    word = word.lower().strip("'’")
    word = re.sub(r"['’]s$", "", word)
    for suffix, keep in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            return word[: -len(suffix)] + keep
    return word


def words(text: str) -> list[str]:
    return re.findall(r"[^\W_]+(?:['’][^\W_]+)?", unicodedata.normalize("NFC", text).lower())


def content_words(text: str) -> set[str]:
    """Stemmed words that carry content: no stopwords, no possessive endings."""
    return {stem(w) for w in words(text) if w not in STOPWORDS and len(w) > 1 or w.isdigit()}


def is_chatter(text: str) -> bool:
    """Small talk with no content: every word is a greeting, an acknowledgement or a stopword."""
    plain = [re.sub(r"['’](?:s|re|ve|ll|d|m|t)$", "", w) for w in words(text)]
    found = [w for w in plain if w not in STOPWORDS and w not in CHATTER_WORDS]
    return not found


def _clean_value(value: str) -> str:
    value = value.strip().strip("\"'“”‘’").strip()
    value = re.sub(r"^(?:in|at|as|on|from|to|by)\s+", "", value, flags=re.IGNORECASE)
    value = re.sub(r"^(?:a|an|the)\s+", "", value, flags=re.IGNORECASE)
    value = re.sub(r"^(?:city|town|village) of\s+", "", value, flags=re.IGNORECASE)
    value = re.sub(r"\s+(?:now|currently|these days|today)$", "", value, flags=re.IGNORECASE)
    return value.strip().rstrip(".!?,;")


def value_key(value: str) -> set[str]:
    """What a value is, for comparison: its stemmed content words, synonyms folded, for places only the part
    before a comma ("Tromsø, Norway" is Tromsø)."""
    value = value.split(",")[0]
    return {SYNONYMS.get(w, w) for w in content_words(_clean_value(value))}


def same_value(a: Claim, b: Claim) -> bool:
    if a.when is not None and b.when is not None:
        return a.when.compatible(b.when)
    if a.number is not None and b.number is not None:
        if a.attribute == "age":
            return abs(a.number - b.number) <= 1  # a birthday may have passed between the two
        return a.number == b.number
    ka, kb = value_key(a.value), value_key(b.value)
    if not ka or not kb:
        return _clean_value(a.value).lower() == _clean_value(b.value).lower()
    return ka <= kb or kb <= ka


def same_person(a: str | None, b: str | None) -> bool:
    """Two ways of naming one person: equal, or one's names a subset of the other's ("Ada" / "Ada Lindqvist")."""
    if a is None or b is None:
        return a is None and b is None
    ta, tb = set(words(a)), set(words(b))
    return bool(ta) and bool(tb) and (ta <= tb or tb <= ta)


def names_in(text: str) -> list[str]:
    """Capitalised name-like word runs, in order, without sentence-start words, months and pronouns."""
    found = []
    for match in re.finditer(NAME, text):
        tokens = match.group(0).split()
        while tokens and tokens[0].lower().strip("'’") in NOT_NAMES:
            tokens = tokens[1:]
        if tokens:
            found.append(re.sub(r"['’]s?$", "", " ".join(tokens)))
    return found


# --------------------------------------------------------------------------------------------- dates


_MONTH = r"(?P<month>" + "|".join(sorted((m for m in MONTHS if len(m) > 2), key=len, reverse=True)) + r")\.?"
_DATE_PATTERNS = [
    re.compile(r"\b(?P<year>\d{3,4})-(?P<mnum>\d{1,2})-(?P<day>\d{1,2})\b"),
    re.compile(r"\b(?P<day>\d{1,2})[/.](?P<mnum>\d{1,2})[/.](?P<year>\d{3,4})\b"),
    re.compile(rf"\b(?P<day>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}(?:,?\s+(?P<year>\d{{3,4}}))?\b", re.I),
    re.compile(rf"\b{_MONTH}\s+(?P<day>\d{{1,2}})(?:st|nd|rd|th)?(?:,?\s+(?P<year>\d{{3,4}}))?\b", re.I),
    re.compile(rf"\b{_MONTH}\s+(?:of\s+)?(?P<year>\d{{3,4}})\b", re.I),
    re.compile(r"\b(?:the\s+)?(?P<mnum>\d{1,2})(?:st|nd|rd|th)\s+month\b(?:\s+of\s+(?P<year>\d{3,4}))?", re.I),
    re.compile(r"\bmonth\s+(?P<mnum>\d{1,2})\b(?:\s+of\s+(?P<year>\d{3,4}))?", re.I),
    re.compile(r"(?<![\d-])(?P<year>1\d{3}|2\d{3})(?![\d-])"),
]


def find_dates(text: str) -> list[PartialDate]:
    """Every date written in `text`, most specific reading first; a span is read once."""
    found: list[tuple[int, PartialDate]] = []
    taken: list[tuple[int, int]] = []
    for pattern in _DATE_PATTERNS:
        for match in pattern.finditer(text):
            if any(match.start() < end and start < match.end() for start, end in taken):
                continue
            parts = match.groupdict()
            month = MONTHS.get((parts.get("month") or "").lower().rstrip(".")) or _int(parts.get("mnum"))
            found.append((match.start(), PartialDate(_int(parts.get("year")), month, _int(parts.get("day")))))
            taken.append((match.start(), match.end()))
    return [d for _, d in sorted(found, key=lambda item: item[0])]


def _int(text: str | None) -> int | None:
    return int(text) if text else None


def _number(text: str) -> int | None:
    text = text.strip().lower()
    if text.isdigit():
        return int(text)
    return NUMBER_WORDS.get(text)


# --------------------------------------------------------------------------------------------- claims

_P = re.compile
# (attribute, pattern); `val` is the value; the special attributes are parsed further below.
_STATEMENTS: list[tuple[str, re.Pattern[str]]] = [
    ("born", _P(rf"{SUBJ}\s+(?:was|were|am|is)\s+(?:originally\s+)?born\b(?P<rest>[^.;!?]*)")),
    ("born", _P(rf"{SUBJ}\s*,\s*born\b(?P<rest>[^.;!?]*)")),
    ("birthplace", _P(rf"{SUBJ}{POSS}\s+(?:birthplace|place of birth|hometown|home town)\s+(?:is|was)\s+{VAL}")),
    ("birthplace", _P(rf"{TITLED_VAL}\s+is\s+where\s+{SUBJ}\s+(?:was|were)\s+born")),
    ("birthplace", _P(rf"{SUBJ}\s+(?:is|was)\s+(?:a\s+)?native\s+of\s+{VAL}")),
    ("birthplace", _P(rf"{SUBJ}\s+(?:hails|hailed)\s+from\s+{VAL}")),
    ("birthplace", _P(rf"{SUBJ}\s+came\s+into\s+the\s+world\s+in\s+{VAL}")),
    ("birth_date", _P(rf"{SUBJ}{POSS}\s+(?:birthday|date of birth|birth date|birthdate)\s+(?:is|was|falls on)\s+(?P<rest>[^.;!?]+)")),  # noqa: E501
    ("died", _P(rf"{SUBJ}\s+(?:died|passed away|was killed)\b(?P<rest>[^.;!?]*)")),
    ("birth_date", _P(rf"{SUBJ}{POSS}\s+(?:birth)\s+(?:was|took place)\s+(?:in|on)\s+(?P<rest>[^.;!?]+)")),
    ("died", _P(rf"{SUBJ}{POSS}\s+death\s+(?:was|came|took place)\b(?P<rest>[^.;!?]*)")),
    ("age", _P(rf"{SUBJ}\s+(?:is|was|turned|just turned|has turned|is now|will be)\s+(?P<num>\d{{1,4}}|[a-z]+-?[a-z]*)\s+(?:years?\s+old|years?\s+of\s+age)")),  # noqa: E501
    ("age", _P(rf"{SUBJ}\s+(?:is|was|turned|just turned|is now)\s+(?P<num>\d{{1,4}})(?=\s*(?:[.,;!?]|and\b|but\b|$))")),
    ("age", _P(rf"{SUBJ}{POSS}\s+age\s+is\s+(?P<num>\d{{1,4}})")),
    ("age", _P(rf"{SUBJ}\s*,?\s+(?:is\s+)?aged\s+(?P<num>\d{{1,4}})")),
    ("job", _P(rf"{SUBJ}\s+(?:works|worked|is working|has worked|is employed|was employed|earns (?:a|her|his|their) living|makes (?:a|her|his|their) living)\s+as\s+{VAL}")),  # noqa: E501
    ("job", _P(rf"{SUBJ}{POSS}\s+(?:job|profession|occupation|career|line of work)\s+(?:is|was)\s+(?:that of\s+)?{VAL}")),  # noqa: E501
    ("job", _P(rf"{SUBJ}\s+(?:is|was|became|has become|is now|trained as)\s+(?:a|an)\s+(?P<jobval>[^,.;!?()]+?){_STOP}")),  # noqa: E501
    ("job", _P(rf"{SUBJ}\s+(?:is|was)\s+(?:a|an)\s+\w+\s+by\s+(?:profession|trade)")),
    ("employer", _P(rf"{SUBJ}\s+(?:works|worked|is working|has worked)\s+(?:as\s+[^,.;!?]+?\s+)?(?:for|at)\s+{VAL}")),
    ("employer", _P(rf"{SUBJ}\s+(?:is|was)\s+(?:employed|hired)\s+(?:by|at)\s+{VAL}")),
    ("employer", _P(rf"{SUBJ}{POSS}\s+employer\s+is\s+{VAL}")),
    ("employer", _P(rf"{SUBJ}\s+(?:is|was)\s+(?:a|an)\s+[^,.;!?]+?\s+at\s+(?P<val>(?:the\s+)?{NAME}(?:\s+of\s+{NAME})?)")),  # noqa: E501
    ("spouse", _P(rf"{SUBJ}\s+(?:is|was|got|has been)\s+married\s+to\s+{VAL}")),
    ("spouse", _P(rf"{SUBJ}\s+married\s+{VAL}")),
    ("spouse", _P(rf"{SUBJ}{POSS}\s+(?:husband|wife|spouse)(?:['’]s name)?\s+is\s+(?:called\s+|named\s+)?{VAL}")),
    ("spouse", _P(rf"{TITLED_VAL}\s+is\s+{SUBJ}{POSS}\s+(?:husband|wife|spouse)")),
    ("home", _P(rf"{SUBJ}\s+(?:lives|is living|now lives|currently lives|still lives|resides|is based|has settled|settled|makes (?:her|his|their) home)\s+in\s+{VAL}")),  # noqa: E501
    ("home", _P(rf"{SUBJ}\s+(?:moved|relocated)\s+to\s+{VAL}")),
    ("home", _P(rf"{SUBJ}{POSS}\s+(?:home|home city|home town)\s+is\s+(?:in\s+)?{VAL}")),
    ("home", _P(rf"{SUBJ}\s+(?:calls|call)\s+{VAL}\s+home")),
    ("favourite", _P(rf"{SUBJ}{POSS}\s+favou?rite\s+(?P<thing>\w+)\s+is\s+{VAL}")),
    ("likes", _P(rf"{SUBJ}\s+(?:likes|loves|enjoys|adores|is fond of|is passionate about|is into|is keen on)\s+{VAL}")),
    ("likes", _P(rf"{SUBJ}{POSS}\s+(?:hobby|hobbies|passion|pastime)\s+(?:is|are|was)\s+{VAL}")),
    ("plays", _P(rf"{SUBJ}\s+(?:plays|played)\s+(?:the\s+)?{VAL}")),
    ("speaks", _P(rf"{SUBJ}\s+(?:speaks|spoke)\s+{VAL}")),
    ("pet", _P(rf"{SUBJ}\s+(?:has|had|owns|owned)\s+(?:a|an|one)\s+(?P<thing>\w+)\s+(?:named|called)\s+{VAL}")),
    ("pet", _P(rf"{SUBJ}{POSS}\s+(?P<thing>\w+)\s+is\s+(?:named|called)\s+{VAL}")),
    ("pet", _P(rf"{SUBJ}{POSS}\s+(?P<thing>\w+)['’]s\s+name\s+is\s+{VAL}")),
    ("studied", _P(rf"{SUBJ}\s+(?:studied|studies|majored in|read)\s+{VAL}")),
    ("studied", _P(rf"{SUBJ}\s+(?:graduated|earned (?:a|her|his|their) degree)\s+from\s+{VAL}")),
    ("children_count", _P(rf"{SUBJ}\s+(?:has|had)\s+(?P<num>\d+|[a-z]+)\s+(?:children|kids|child|sons and daughters)")),
]  # fmt: skip

# Events that cannot happen before a person's birth (or in the future, written in the past tense).
_EVENT = _P(
    rf"{SUBJ}\s+(?:graduated|married|got married|moved|joined|founded|retired|won|published|started|began|"
    r"emigrated|enrolled|qualified)\b[^.;!?]*?\b(?:in|since|during)\s+(?P<year>1\d{3}|2\d{3})\b"
)

_QUESTIONS: list[tuple[str, re.Pattern[str]]] = [
    ("birthplace", _P(rf"^[Ww]here\s+(?:was|is|were)\s+{SUBJ}\s+born")),
    ("birthplace", _P(rf"^[Ww]hat\s+is\s+{SUBJ}{POSS}\s+(?:birthplace|place of birth|hometown|home town)")),
    ("birthplace", _P(rf"^[Ii]n\s+(?:which|what)\s+(?:city|town|village|place)\s+was\s+{SUBJ}\s+born")),
    ("birthplace", _P(rf"^[Ww]hich\s+(?:city|town|village)\s+was\s+{SUBJ}\s+born\s+in")),
    ("birthplace", _P(rf"^[Ww]here\s+(?:does|did)\s+{SUBJ}\s+(?:come|hail)\s+from")),
    ("birth_date", _P(rf"^(?:[Ww]hen|[Ww]hat\s+year|[Ii]n\s+what\s+year|[Ii]n\s+which\s+year|[Oo]n\s+what\s+date)\s+was\s+{SUBJ}\s+born")),  # noqa: E501
    ("birth_date", _P(rf"^[Ww]hat\s+is\s+{SUBJ}{POSS}\s+(?:date of birth|birth date|birthdate|birthday|year of birth)")),  # noqa: E501
    ("birth_date", _P(rf"^[Ww]hen\s+is\s+{SUBJ}{POSS}\s+birthday")),
    ("death_date", _P(rf"^(?:[Ww]hen|[Ww]hat\s+year|[Ii]n\s+what\s+year)\s+did\s+{SUBJ}\s+(?:die|pass away)")),
    ("age", _P(rf"^[Hh]ow\s+old\s+is\s+{SUBJ}")),
    ("age", _P(rf"^[Ww]hat\s+is\s+{SUBJ}{POSS}\s+age")),
    ("job", _P(rf"^[Ww]hat\s+(?:does|did)\s+{SUBJ}\s+do(?:\s+for\s+(?:a\s+)?(?:living|work))?\s*\?")),
    ("job", _P(rf"^[Ww]hat\s+is\s+{SUBJ}{POSS}\s+(?:job|profession|occupation|line of work|career)")),
    ("job", _P(rf"^[Ww]hat\s+(?:does|did)\s+{SUBJ}\s+work\s+as")),
    ("job", _P(rf"^[Ww]hat\s+(?:kind|sort)\s+of\s+work\s+(?:does|did)\s+{SUBJ}\s+do")),
    ("employer", _P(rf"^[Ww]here\s+(?:does|did)\s+{SUBJ}\s+work")),
    ("employer", _P(rf"^[Ww]ho\s+(?:does|did)\s+{SUBJ}\s+work\s+for")),
    ("employer", _P(rf"^[Ww]hich\s+(?:company|firm|organi[sz]ation|employer)\s+(?:does|did)\s+{SUBJ}\s+work\s+(?:for|at)")),  # noqa: E501
    ("employer", _P(rf"^(?:[Ww]ho|[Ww]hich\s+company)\s+employs\s+{SUBJ}")),
    ("employer", _P(rf"^[Ww]ho\s+is\s+{SUBJ}{POSS}\s+employer")),
    ("spouse", _P(rf"^[Ww]ho\s+is\s+{SUBJ}\s+married\s+to")),
    ("spouse", _P(rf"^[Ww]ho\s+is\s+{SUBJ}{POSS}\s+(?:husband|wife|spouse)")),
    ("spouse", _P(rf"^[Ww]ho(?:m)?\s+did\s+{SUBJ}\s+marry")),
    ("spouse", _P(rf"^[Ww]hat\s+is\s+the\s+name\s+of\s+{SUBJ}{POSS}\s+(?:husband|wife|spouse)")),
    ("home", _P(rf"^[Ww]here\s+(?:does|do)\s+{SUBJ}\s+(?:live|reside|currently live|live now)")),
    ("home", _P(rf"^(?:[Ww]hat|[Ww]hich|[Ii]n\s+which|[Ii]n\s+what)\s+(?:city|town|country)\s+(?:does|do)\s+{SUBJ}\s+live")),  # noqa: E501
    ("home", _P(rf"^[Ww]here\s+is\s+{SUBJ}\s+based")),
    ("home", _P(rf"^[Ww]here\s+is\s+{SUBJ}{POSS}\s+home")),
    ("favourite", _P(rf"^[Ww]hat\s+is\s+{SUBJ}{POSS}\s+favou?rite\s+(?P<thing>\w+)")),
    ("plays", _P(rf"^[Ww]hat\s+(?:instrument|sport|game)s?\s+(?:does|did)\s+{SUBJ}\s+play")),
    ("speaks", _P(rf"^[Ww]hat\s+languages?\s+(?:does|did)\s+{SUBJ}\s+speak")),
    ("likes", _P(rf"^[Ww]hat\s+(?:does|did)\s+{SUBJ}\s+(?:like|enjoy|love)")),
    ("likes", _P(rf"^[Ww]hat\s+(?:is|are)\s+{SUBJ}{POSS}\s+(?:hobby|hobbies|passion)")),
    ("pet", _P(rf"^[Ww]hat\s+is\s+(?:the\s+name\s+of\s+)?{SUBJ}{POSS}\s+(?P<thing>\w+)(?:['’]s\s+name|\s+called|\s+named)?")),  # noqa: E501
    ("children_count", _P(rf"^[Hh]ow\s+many\s+(?:children|kids)\s+(?:does|did)\s+{SUBJ}\s+have")),
    ("studied", _P(rf"^[Ww]hat\s+did\s+{SUBJ}\s+study")),
]  # fmt: skip

_RELATIVES = {"husband": "spouse", "wife": "spouse", "spouse": "spouse", "partner": "spouse"}


def _subject(match: re.Match[str]) -> str | None:
    raw = match.group("subj")
    if re.fullmatch(PRONOUN, raw):
        return None
    names = names_in(raw)
    return names[0] if names else None


def _is_real_subject(match: re.Match[str]) -> bool:
    raw = match.group("subj")
    if re.fullmatch(PRONOUN, raw):
        return True
    return bool(names_in(raw))


def _places_and_dates(rest: str) -> tuple[list[str], list[PartialDate]]:
    dates = find_dates(rest)
    places = []
    for match in re.finditer(rf"\b(?:in|at|near)\s+(?:the\s+(?:city|town|village)\s+of\s+)?(?P<place>{NAME})", rest):
        place = match.group("place")
        if place.split()[0].lower().rstrip(".") in MONTHS:
            continue
        places.append(place)
    return places, dates


def _job_value(value: str) -> str | None:
    tokens = words(_clean_value(value))
    if not tokens or tokens[0] in _HOBBY_ADJECTIVES or any(t in NOT_JOBS for t in tokens):
        return None
    head = tokens[-1]
    looks_like_job = head in JOB_WORDS or head.endswith(("smith", "maker", "keeper", "wright", "ologist", "ician"))
    return _clean_value(value) if looks_like_job else None


def statement_claims(text: str) -> list[Claim]:
    """Every claim the relation lexicon finds in a free-text statement."""
    claims: list[Claim] = []
    for whole in sentences(text):
        whole, _ = strip_correction_cue(whole)
        for sentence in clauses(whole):
            for attribute, pattern in _STATEMENTS:
                for match in pattern.finditer(sentence):
                    if not _is_real_subject(match):
                        continue
                    claims.extend(_claims_from_match(attribute, match))
    return _dedupe(claims)


def _claims_from_match(attribute: str, match: re.Match[str]) -> list[Claim]:
    subject = _subject(match)
    groups = match.groupdict()
    if attribute in ("born", "died"):
        places, dates = _places_and_dates(groups["rest"])
        place_attr, date_attr = ("birthplace", "birth_date") if attribute == "born" else ("death_place", "death_date")
        found = [Claim(subject, place_attr, _clean_value(p)) for p in places[:1]]
        found += [Claim(subject, date_attr, str(d), when=d) for d in dates[:1]]
        return found
    if attribute == "birth_date":
        dates = find_dates(groups["rest"])
        return [Claim(subject, "birth_date", str(dates[0]), when=dates[0])] if dates else []
    if attribute in ("age", "children_count"):
        number = _number(groups["num"])
        return [Claim(subject, attribute, str(number), number=number)] if number is not None else []
    if attribute == "job" and groups.get("jobval") is not None:
        value = _job_value(groups["jobval"])
        return [Claim(subject, "job", value)] if value else []
    if attribute == "job" and groups.get("val") is None:
        return []
    value = _clean_value(groups["val"])
    if not value:
        return []
    if attribute == "favourite":
        return [Claim(subject, f"favourite_{stem(groups['thing'])}", value)]
    if attribute == "pet":
        thing = groups["thing"].lower()
        if thing in _RELATIVES:
            return [Claim(subject, _RELATIVES[thing], value)]
        return [Claim(subject, f"pet_{stem(thing)}", value)]
    return [Claim(subject, attribute, value)]


def question_attribute(question: str) -> tuple[str, str | None] | None:
    """What a question asks about: (attribute, the subject as written or None for a pronoun), or None."""
    question = question.strip()
    for attribute, pattern in _QUESTIONS:
        match = pattern.search(question)
        if match and _is_real_subject(match):
            if attribute == "favourite":
                attribute = f"favourite_{stem(match.group('thing'))}"
            elif attribute == "pet":
                thing = match.group("thing").lower()
                if thing in ("name", "job", "profession", "occupation", "age", "birthplace", "hometown"):
                    continue
                attribute = _RELATIVES.get(thing) or f"pet_{stem(thing)}"
            return attribute, _subject(match)
    return None


def qa_claims(question: str, answer: str) -> list[Claim]:
    """Claims of a question with its answer: those the answer states, plus the answer as the value of what the
    question asks ("Where was Ada born?" + "Oslo" is Ada's birthplace)."""
    asked = question_attribute(question)
    claims = statement_claims(answer)
    if asked is None:
        return claims
    attribute, subject = asked
    if subject is not None:
        claims = [Claim(c.subject or subject, c.attribute, c.value, c.when, c.number) for c in claims]
    if any(c.attribute == attribute for c in claims):
        return claims
    first = sentences(answer)[0] if sentences(answer) else answer
    first, _ = strip_correction_cue(first)
    if attribute in ("birth_date", "death_date"):
        dates = find_dates(first)
        if dates:
            claims.append(Claim(subject, attribute, str(dates[0]), when=dates[0]))
    elif attribute in ("age", "children_count"):
        match = re.search(r"\b(\d{1,4})\b", first) or re.search(r"\b([a-z]+)\b", first.lower())
        number = _number(match.group(1)) if match else None
        if number is not None:
            claims.append(Claim(subject, attribute, str(number), number=number))
    else:
        value = re.sub(rf"^(?:(?:{PRONOUN})\b|{NAME})\s+(?:is|was|works|lives)\b\s*", "", first)
        value = _clean_value(value)
        if attribute == "job" and value:
            value = _job_value(value) or value
        if value and len(value.split()) <= 6:
            claims.append(Claim(subject, attribute, value))
    return _dedupe(claims)


def _dedupe(claims: list[Claim]) -> list[Claim]:
    seen, kept = set(), []
    for claim in claims:
        key = (claim.subject, claim.attribute, claim.value.lower())
        if key not in seen:
            seen.add(key)
            kept.append(claim)
    return kept


def claims_of(text: str, question: str | None = None, answer: str | None = None) -> list[Claim]:
    if question is not None and answer is not None:
        return qa_claims(question, answer)
    return statement_claims(text)


def infer_subject(text: str, question: str | None = None, answer: str | None = None) -> str | None:
    """The person a memory is about: the first named subject of a claim, else the first name in it."""
    stripped, _ = strip_correction_cue(question if question is not None else text)
    if question is not None:
        asked = question_attribute(stripped)
        if asked and asked[1]:
            return asked[1]
    claims = claims_of(text, question, answer)
    for claim in claims:
        if claim.subject:
            return claim.subject
    values = set().union(*(set(words(c.value)) for c in claims)) if claims else set()
    for source in (stripped, answer or ""):
        # "Her birthplace is Oslo": Oslo is a value, not the person this is about.
        names = [n for n in names_in(source) if not set(words(n)) & values]
        if names:
            return names[0]
    return None


def is_single_valued(attribute: str) -> bool:
    return attribute in SINGLE_VALUED or attribute.startswith("favourite_")


def event_years(text: str) -> list[tuple[str, int]]:
    """(what happened, year) for life events that cannot precede a birth: graduated, married, moved ..."""
    found = []
    for sentence in sentences(text):
        for match in _EVENT.finditer(sentence):
            if _is_real_subject(match):
                verb = sentence[match.end("subj") : match.start("year")].split()[0]
                found.append((verb, int(match.group("year"))))
    return found


# --------------------------------------------------------------------------------------------- checks

MAX_AGE = 122  # the oldest verified human lifespan


def reality_problems(claims: list[Claim], text: str, known: list[Claim], today: date) -> list[str]:
    """Why a memory cannot be true: impossible dates and ages, deaths before births, births or past events in
    the future. `known` are the stored claims about the same person (a death is checked against a stored
    birth, too)."""
    problems: list[str] = []
    for claim in claims:
        if claim.when is not None and claim.when.problem():
            problems.append(f"impossible date: {claim.when.problem()}")
    for found in find_dates(text):
        problem = found.problem()
        if problem and f"impossible date: {problem}" not in problems:
            problems.append(f"impossible date: {problem}")
    births = [c.when for c in claims if c.attribute == "birth_date" and c.when]
    deaths = [c.when for c in claims if c.attribute == "death_date" and c.when]
    known_births = [c.when for c in known if c.attribute == "birth_date" and c.when]
    known_deaths = [c.when for c in known if c.attribute == "death_date" and c.when]
    for claim in claims:
        if claim.attribute == "age" and claim.number is not None and claim.number > MAX_AGE:
            problems.append(f"impossible age: {claim.number} (the oldest person on record lived to {MAX_AGE})")
    for birth in births:
        if birth.after(today):
            problems.append(f"born in the future ({birth}, today is {today.isoformat()})")
        for death in deaths + known_deaths:
            if death.before(birth):
                problems.append(f"died ({death}) before being born ({birth})")
        if birth.year is not None and today.year - birth.year > MAX_AGE and not deaths + known_deaths:
            ages = [c.number for c in claims if c.attribute == "age" and c.number is not None]
            if ages:
                problems.append(f"born in {birth.year} but said to be alive at {ages[0]}")
    for death in deaths:
        if death.after(today):
            problems.append(f"died in the future ({death}, today is {today.isoformat()})")
        for birth in known_births:
            if death.before(birth):
                problems.append(f"died ({death}) before being born ({birth}, as stored)")
    for verb, year in event_years(text):
        if year > today.year:
            problems.append(f"{verb} in {year}, which is in the future")
        for birth in births + known_births:
            if birth.year is not None and year < birth.year:
                problems.append(f"{verb} in {year}, before being born in {birth.year}")
    for claim in claims:
        if claim.attribute == "age" and claim.number is not None:
            for birth in births:
                if birth.year is not None and not _age_fits(claim.number, birth.year, today):
                    problems.append(f"aged {claim.number} but born in {birth.year}")
    return list(dict.fromkeys(problems))


def _age_fits(age: int, birth_year: int, today: date) -> bool:
    return today.year - birth_year - 1 <= age <= today.year - birth_year


def conflicts(new: Claim, old: Claim, today: date) -> bool:
    """Whether two claims about the same person cannot both be true."""
    if new.attribute == old.attribute:
        return is_single_valued(new.attribute) and not same_value(new, old)
    pair = {new.attribute, old.attribute}
    if pair == {"age", "birth_date"}:
        age = new if new.attribute == "age" else old
        birth = old if new.attribute == "age" else new
        if age.number is not None and birth.when is not None and birth.when.year is not None:
            # An age stored a while ago may be a year or two behind: only a clear mismatch conflicts.
            expected = today.year - birth.when.year
            return abs(age.number - expected) > 2
    return False
