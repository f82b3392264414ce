"""Judges: who decides whether a memory is plausible, new, or in conflict with what is stored, and (for the
evaluation) whether an answer is right. `local` is offline (rules plus the base model); `gemini` asks
google-genai. Both share one persistent cache (`cache`), one retry policy (`retry`) and one way of passing
untrusted text as data (`data`).

May import sleeptrain.config, sleeptrain.settings, sleeptrain.errors, sleeptrain.models (to find the base
model), transformers/torch and google-genai; never the hippocampus, sleep, workflows or the CLI.
"""

from __future__ import annotations

from typing import Protocol

from sleeptrain.judges.cache import JudgeCache
from sleeptrain.judges.types import AnswerGrade, Assessment, MemoryAssessment, Statement


class Judge(Protocol):
    name: str

    def assess(self, new: Statement, stored: list[Statement], today) -> Assessment: ...

    def grade_answer(self, question: str, expected: str, answer: str) -> AnswerGrade: ...


def make_judge(config, base_model: str | None = None, kind: str | None = None, cache: JudgeCache | None = None):
    """The judge a HippocampusConfig asks for (`kind` overrides config.judge). The local judge reads with the
    base model (`base_model` as a recipe names it; None: the default model)."""
    from sleeptrain.judges.local import LocalJudge
    from sleeptrain.models import resolve_base_model

    kind = kind or config.judge
    cache = cache or JudgeCache(config.judge_cache)

    def local() -> LocalJudge:
        return LocalJudge(resolve_base_model(base_model), cache, config.duplicate_similarity)

    if kind == "local":
        return local()
    if kind == "gemini":
        from sleeptrain.errors import SleeptrainError
        from sleeptrain.judges.gemini import GeminiJudge
        from sleeptrain.judges.retry import RetryPolicy
        from sleeptrain.settings import load_settings

        settings = load_settings()
        if not settings.gemini_api_key:
            raise SleeptrainError("the gemini judge needs an API key: set GEMINI_API_KEY (or use --judge local)")
        return GeminiJudge(
            api_key=settings.gemini_api_key,
            model=config.judge_model,
            base_url=settings.gemini_base_url,
            cache=cache,
            retry=RetryPolicy(attempts=config.judge_retries),
            timeout_s=config.judge_timeout_s,
            fallback=local,
        )
    from sleeptrain.errors import SleeptrainError

    raise SleeptrainError(f"unknown judge {kind!r} (choose local or gemini)")


__all__ = ["AnswerGrade", "Assessment", "Judge", "JudgeCache", "MemoryAssessment", "Statement", "make_judge"]
