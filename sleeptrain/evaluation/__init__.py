"""Evaluation: asking a model questions and scoring its answers (keyword scoring for now; the suites,
Gemini rescoring and the HTML report build on this).

May import: sleeptrain.models (generation), sleeptrain.errors, transformers, peft, torch.
"""

from sleeptrain.evaluation.recall import (
    Probe,
    ProbeResult,
    accuracy_by_kind,
    keyword_match,
    read_probes,
    score_probes,
)

__all__ = [
    "Probe",
    "accuracy_by_kind",
    "ProbeResult",
    "keyword_match",
    "read_probes",
    "score_probes",
]
