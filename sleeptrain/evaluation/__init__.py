"""Evaluation: asking a model questions and scoring its answers (keyword scoring), and how far training moved
a model from its base on general questions (drift); the suites, Gemini rescoring and the HTML report build
on this.

May import: sleeptrain.models (generation), sleeptrain.data (render), sleeptrain.errors, transformers, peft, torch.
"""

from sleeptrain.evaluation.drift import Drift, answer_drift
from sleeptrain.evaluation.recall import (
    Probe,
    ProbeResult,
    accuracy_by_kind,
    keyword_match,
    read_probes,
    score_probes,
)

__all__ = [
    "Drift",
    "answer_drift",
    "Probe",
    "accuracy_by_kind",
    "ProbeResult",
    "keyword_match",
    "read_probes",
    "score_probes",
]
