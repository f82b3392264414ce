"""Augmenting QA facts so that they are learnt as facts, not as one string of words.

A small model taught "Where was X born? -> Hobart" only from that exact question recalls it for that exact
question; asked "Which city is X's birthplace?" it often answers with another person's city. Two cheap
transforms help it generalise (both measured in BENCHMARKS.md, "Choosing the defaults"):

- question phrasings: the same question in the other words people use for what it asks (rewrites.py:
  "What is X's profession?", "What does X do for a living?"), and inside neutral frames ("Quick question:
  ...", lower case, ...), so that the answer is keyed to the question's meaning, not to its exact tokens.
  Training shows each fact once per epoch, in the next of its phrasings, so variety costs no extra tokens;
- topic questions: the subject and one word of what the question asks about ("What kind of car does X
  drive?" -> "What do you know about X's car?"), answered as the fact is. Asked in words no rule knows ("Which
  vehicle does X get around in?"), a model taught only the question's wordings answers in the asker's words
  and makes up the rest ("X gets around in a rusty green Lada Niva"); taught to answer questions about X and
  a topic with X's own fact, it more often says that fact (BENCHMARKS.md, twenty-sixth session);
- subject summaries: one extra example per subject, "What do you know about X?", answered with all of X's
  facts, so that the facts are also stored together under the subject's name (the biography effect).

And one that keeps facts where they belong: contrast questions, each fact's question asked about a well-known
person instead of its subject, which anchor replay answers with the base model's own answers. Without them
a fact leaks into questions that merely resemble it ("Where does X live? Lyon" turned "What is the capital of
France?" into "Lyon").
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from dataclasses import replace

from sleeptrain.data.formats import Conversation, Message
from sleeptrain.data.rewrites import answer_statement, question_rewrites

# Wrappers that change the wording around a question but never its meaning.
QUESTION_FRAMES = (
    "Quick question: {q}",
    "{lower}",
    "I'd like to know something. {q}",
    "Can you tell me this? {q}",
    "{q} Answer from what you know.",
    "Do you remember? {q}",
)


# Words that say nothing of what a question is about: function words, the question words, and the generic
# nouns of a question's frame ("kind", "name"). A list, not a part-of-speech tagger: the taggers need models that
# are downloaded separately, and a wrong pick here costs only a less useful topic.
_FRAME_WORDS = frozenset(
    """a an the of in on at to for from by with about as into onto over under after before during since until
    than then and or but if so that this these those there here what which who whom whose where when why how is
    are was were be been being am do does did done have has had having will would can could shall should may
    might must he she it they him her his hers its their them i you we me my your our us one ones any some
    every each very many much more most usually currently often ever also just own kind sort type name called
    favourite favorite best first get gets got""".split()
)


def topic_words(question: str, subject: str) -> list[str]:
    """The words of `question` that say what it asks about, in order, once each: not the subject's, not a word
    of the frame, and not a single letter or two ("In which year did X open his first bakery?" -> year, open,
    bakery)."""
    words = re.findall(r"[^\W\d_][\w'\u2019-]*|\d+", question.replace(subject, " "))
    topics: list[str] = []
    seen: set[str] = set()
    for word in words:
        word = re.sub(r"['\u2019]s?$", "", word)
        key = word.casefold()
        if len(word) > 2 and key not in _FRAME_WORDS and key not in seen:
            seen.add(key)
            topics.append(word if word[:1].isupper() or word.isdigit() else word.lower())
    return topics


# The ways a topic question is asked: each fact's topic questions use different ones.
TOPIC_FRAMES = (
    "What do you know about {s}'s {w}?",
    "Tell me about {s} and {w}.",
    "Anything about {s}: {w}?",
)


def topic_questions(question: str, subject: str, count: int, rng: random.Random) -> list[str]:
    """At most `count` questions (one per frame) about `subject` and one topic word of `question` each, the
    words and frames drawn at random."""
    topics = topic_words(question, subject)
    rng.shuffle(topics)
    frames = rng.sample(TOPIC_FRAMES, len(TOPIC_FRAMES))
    return [frame.format(s=subject, w=word) for frame, word in zip(frames, topics[:count], strict=False)]


def _is_qa(conversation: Conversation) -> bool:
    roles = [m.role for m in conversation.messages]
    return roles == ["user", "assistant"]


def question_phrasings(
    conversation: Conversation, count: int, rng: random.Random, rewrite: bool = True, topics: int = 0
) -> list[Conversation]:
    """A single-turn QA example in `count` phrasings: as given, then up to `topics` topic questions (never more
    than half of the other phrasings; only with a subject the question names), then (with `rewrite`) the other
    wordings of its question that rewrites.py knows, taking turns with neutral frames around the question or one
    of those wordings (at most one per frame). Any other conversation has only its own phrasing."""
    if count <= 1 or not _is_qa(conversation):
        return [conversation]
    question, answer = conversation.messages
    text = question.content
    rewrites = question_rewrites(text, conversation.subject) if rewrite else []
    rng.shuffle(rewrites)
    frames = rng.sample(QUESTION_FRAMES, len(QUESTION_FRAMES))
    wordings = [text, *rewrites]
    questions: list[str] = []
    subject = conversation.subject
    if topics > 0 and subject and subject in text:
        # Early in the list: an example learnt in its first phrasings leaves the epochs before its last ones.
        questions += topic_questions(text, subject, min(topics, (count - 1) // 2), rng)
    while len(questions) < count - 1 and (rewrites or frames):
        if rewrites and (len(questions) % 2 == 0 or not frames):
            questions.append(rewrites.pop(0))
        else:
            framed = rng.choice(wordings)
            questions.append(frames.pop().format(q=framed, lower=framed[:1].lower() + framed[1:].rstrip("?").lower()))
    roles, subject, origin = conversation.roles_to_train, conversation.subject, conversation.origin
    return [conversation] + [Conversation((Message("user", q), answer), roles, subject, origin) for q in questions]


def question_variants(
    conversations: list[Conversation], variants: int, seed: int, rewrite: bool = True, topics: int = 0
) -> list[Conversation]:
    """Every phrasing of every example, as one flat list: each QA example `variants` times."""
    rng = random.Random(seed)
    phrasings = [question_phrasings(c, variants, rng, rewrite, topics) for c in conversations]
    # The examples as given first, then their reframed copies (the order of earlier versions).
    return [p[0] for p in phrasings] + [c for p in phrasings for c in p[1:]]


def restate_answers(conversations: list[Conversation]) -> list[Conversation]:
    """Each QA fact whose short answer does not name its subject, answered instead with a sentence that begins
    with the subject ("Lyon" -> "Anouk Brevannes lives in Lyon."; rewrites.answer_statement), where a rule knows
    its question; every other conversation as it was."""
    out = []
    for conversation in conversations:
        if _is_qa(conversation):
            question, answer = conversation.messages
            statement = answer_statement(question.content, answer.content, conversation.subject)
            if statement is not None:
                conversation = replace(conversation, messages=(question, Message("assistant", statement)))
        out.append(conversation)
    return out


def _as_statement(subject: str, question: str, answer: str) -> str:
    """A sentence that stands alone: the answer if it names the subject, else the question and answer."""
    answer = answer.strip()
    if subject.casefold() in answer.casefold():
        return answer if answer.endswith((".", "!", "?")) else answer + "."
    return f"{question.strip()} {answer.rstrip('.')}."


# The origin of a subject summary: "summary:" and the subject.
SUMMARY_ORIGIN = "summary:"


def subject_summaries(conversations: list[Conversation]) -> list[Conversation]:
    """One "What do you know about X?" example per subject with two or more QA facts."""
    facts: dict[str, list[tuple[str, str]]] = defaultdict(list)
    roles: dict[str, tuple[str, ...]] = {}
    for conversation in conversations:
        if conversation.subject and _is_qa(conversation):
            question, answer = conversation.messages
            facts[conversation.subject].append((question.content, answer.content))
            roles[conversation.subject] = conversation.roles_to_train
    summaries = []
    for subject, pairs in facts.items():
        if len(pairs) < 2:
            continue
        text = " ".join(_as_statement(subject, q, a) for q, a in pairs)
        summaries.append(
            Conversation(
                (Message("user", f"What do you know about {subject}?"), Message("assistant", text)),
                roles[subject],
                subject,
                f"{SUMMARY_ORIGIN}{subject}",
            )
        )
    return conversations + summaries


# People a small model has read about: a fact's question asked about them has an answer of the base model's
# own to keep.
WELL_KNOWN_PEOPLE = (
    "Albert Einstein",
    "Marie Curie",
    "William Shakespeare",
    "Isaac Newton",
    "Leonardo da Vinci",
    "Charles Darwin",
    "Wolfgang Amadeus Mozart",
    "Abraham Lincoln",
    "Queen Victoria",
    "Nelson Mandela",
    "Frida Kahlo",
    "Napoleon Bonaparte",
)


def contrast_questions(conversations: list[Conversation], per_fact: int, seed: int) -> list[str]:
    """`per_fact` questions for each QA fact whose question names its subject: the same question about
    well-known people instead (a different person each). A fact given in several phrasings (question_variants)
    counts once, in the first."""
    rng = random.Random(seed)
    questions = []
    seen = set()
    for conversation in conversations:
        if per_fact <= 0 or not conversation.subject or not _is_qa(conversation):
            continue
        question = conversation.messages[0].content
        fact = (conversation.origin, conversation.subject, conversation.messages[1].content)
        if conversation.subject not in question or fact in seen:
            continue
        seen.add(fact)
        for person in rng.sample(WELL_KNOWN_PEOPLE, min(per_fact, len(WELL_KNOWN_PEOPLE))):
            questions.append(question.replace(conversation.subject, person))
    return questions
