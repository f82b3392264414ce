"""The Gemini judge: google-genai with structured JSON output (a pydantic schema), untrusted text passed as
delimited data, the shared retry policy, and every answer cached on disk. It reads memories with world
knowledge (a wrong historical fact is implausible, and it may offer the corrected fact); the date rules of
the local judge are applied on top, and when Gemini cannot be reached the local judge decides and says so."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from sleeptrain.errors import SleeptrainError
from sleeptrain.judges.cache import JudgeCache, cache_key
from sleeptrain.judges.data import DATA_RULES, as_data
from sleeptrain.judges.local import LocalJudge
from sleeptrain.judges.retry import RetryPolicy, with_retries
from sleeptrain.judges.types import AnswerGrade, Assessment, MemoryAssessment, Statement

log = logging.getLogger("sleeptrain")
DEFAULT_MODEL = "gemini-2.5-flash"
PROMPT_VERSION = 1  # part of every cache key: a changed prompt asks again
M = TypeVar("M", bound=BaseModel)

MEMORY_TASK = f"""You are the hippocampus of a language model: you decide whether a new memory may be learned.
{DATA_RULES}
The data holds `today`, `new_memory` and `stored_memories` (every stored memory about the same subject, each
with an id). Judge only `new_memory`:
- subject: the person it is about, if any.
- is_chatter: true for small talk with no content ("ok thanks").
- plausible: false if it cannot be true: impossible dates or ages, a death before a birth, a birth after
  `today`, or a claim that contradicts well-established world knowledge. List why in `problems`.
- corrected_text: only for a claim wrong by world knowledge, the same memory with the fact corrected.
- duplicate_of: ids of stored memories that already say everything it says (also in other words).
- contradicts: ids of stored memories that cannot be true together with it (also in other words:
  "born in Tromsø" contradicts "her birthplace is Oslo").
- importance: 0 to 1; core identity (names, dates, places, work, family) 0.7-1, trivia 0.1-0.3."""

ANSWER_TASK = f"""You grade answers. {DATA_RULES}
The data holds `question`, `expected` and `answer`. `correct` is true when the answer states what the
expected answer states (other words are fine; extra true detail is fine; a contradiction is not)."""


class GeminiJudge:
    """Judge with Gemini. `fallback` builds the local judge used when Gemini fails (after the retries)."""

    name = "gemini"

    def __init__(
        self,
        api_key: str,
        model: str | None = None,
        base_url: str | None = None,
        cache: JudgeCache | None = None,
        retry: RetryPolicy | None = None,
        timeout_s: float = 60.0,
        fallback: Callable[[], LocalJudge] | None = None,
    ) -> None:
        try:
            from google import genai
            from google.genai import types
        except ImportError:
            raise SleeptrainError("the gemini judge needs google-genai: pip install 'sleeptrain[gemini]'") from None
        self.model = model or DEFAULT_MODEL
        self.cache = cache
        self.retry = retry or RetryPolicy()
        self._types = types
        # Retries are ours (one policy for every judge), so the client tries exactly once per call.
        options = types.HttpOptions(
            base_url=base_url,
            timeout=int(timeout_s * 1000),
            retry_options=types.HttpRetryOptions(attempts=1),
        )
        self._client = genai.Client(api_key=api_key, http_options=options)
        self._fallback_factory = fallback or LocalJudge
        self._fallback: LocalJudge | None = None
        self._rules = LocalJudge(model_path=None)

    def assess(self, new: Statement, stored: list[Statement], today: date) -> Assessment:
        payload = {
            "today": today.isoformat(),
            "new_memory": _statement(new),
            "stored_memories": [_statement(s) for s in stored],
        }
        try:
            judgement = self._ask(MEMORY_TASK, payload, MemoryAssessment)
        except Exception as exc:  # noqa: BLE001 - any failure of the remote judge means: judge locally
            reason = _short(exc)
            log.warning("gemini judge failed (%s); judging locally", reason)
            assessment = self._local().assess(new, stored, today)
            assessment.notes.insert(0, f"gemini judge failed ({reason}); judged by the local judge instead")
            return assessment
        known = {s.id for s in stored}
        judgement.duplicate_of = [i for i in judgement.duplicate_of if i in known]
        judgement.contradicts = [i for i in judgement.contradicts if i in known]
        judgement.importance = min(1.0, max(0.0, judgement.importance))
        # Date arithmetic is certain; a language model's reading of it is not: the rules have the last word.
        rules = self._rules.assess(new, stored, today).judgement
        for problem in rules.problems:
            if problem not in judgement.problems:
                judgement.problems.append(problem)
        judgement.plausible = judgement.plausible and rules.plausible
        judgement.contradicts += [i for i in rules.contradicts if i not in judgement.contradicts]
        if judgement.contradicts:
            judgement.duplicate_of = []
        judgement.subject = new.subject or judgement.subject
        content = 0.0 if judgement.is_chatter else 1.0
        return Assessment(judgement, novelty=0.0 if judgement.duplicate_of else 1.0, content=content, judge="gemini")

    def grade_answer(self, question: str, expected: str, answer: str) -> AnswerGrade:
        payload = {"question": question, "expected": expected, "answer": answer}
        try:
            return self._ask(ANSWER_TASK, payload, AnswerGrade)
        except Exception as exc:  # noqa: BLE001
            grade = self._local().grade_answer(question, expected, answer)
            grade.reason = f"gemini judge failed ({_short(exc)}); graded locally: {grade.reason}"
            return grade

    def _ask(self, task: str, payload: dict[str, Any], schema: type[M]) -> M:
        key = cache_key("gemini", PROMPT_VERSION, self.model, task, schema.__name__, payload)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                return schema.model_validate(hit)
        config = self._types.GenerateContentConfig(
            system_instruction=task,
            response_mime_type="application/json",
            response_schema=schema,
            temperature=0.0,
        )

        def call() -> M:
            response = self._client.models.generate_content(model=self.model, contents=as_data(payload), config=config)
            parsed = response.parsed
            if isinstance(parsed, schema):
                return parsed
            try:
                return schema.model_validate_json(response.text or "")
            except ValidationError as exc:
                raise SleeptrainError(f"the judge's answer does not fit {schema.__name__}: {_short(exc)}") from exc

        answer = with_retries(call, self.retry, what="gemini judge")
        if self.cache is not None:
            self.cache.put(key, f"gemini-{schema.__name__}", answer.model_dump())
        return answer

    def _local(self) -> LocalJudge:
        if self._fallback is None:
            self._fallback = self._fallback_factory()
        return self._fallback


def _statement(statement: Statement) -> dict[str, Any]:
    row: dict[str, Any] = {"id": statement.id, "text": statement.text}
    if statement.subject:
        row["subject"] = statement.subject
    if statement.question is not None:
        row["question"], row["answer"] = statement.question, statement.answer
    return row


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:160]}" if text else type(exc).__name__
