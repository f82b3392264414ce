"""The default model's answers to the bundled anchor prompts, shipped with sleeptrain.

Recording them is the longest part of a first run that is not training: 120 greedy answers of 48 tokens took
~100 s on two CPU cores (BENCHMARKS.md, seventeenth session), on every new machine, in every fresh CI clone.
They are the default model's own greedy answers in fp32 (another CPU's kernels may break a rare near-tie
another way, which changes nothing a run needs), so they ship as data
(`data/anchors/default_model_answers.json`, written by `scripts/record_default_anchor_answers.py`) together
with what they were recorded under: a checksum of the model's weights as loaded (their precision included),
the chat template, the system prompt, the prompt set, the answer length and the batch grouping. A run whose
anchors match all of that starts from them; any other run (another model, template or prompt file, QLoRA's
4-bit weights) records its own.

May import: sleeptrain.examples, torch, the standard library.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from sleeptrain.examples import example_path

SHIPPED_ANSWERS = "anchors/default_model_answers.json"


def sha1_text(text: str | None) -> str | None:
    return None if text is None else hashlib.sha1(text.encode("utf-8")).hexdigest()


def weights_checksum(model: Any) -> tuple[int, str]:
    """The number of values in a model's state and the SHA-256 of its names and bytes, in name order: the
    same for the same weights however they were stored or loaded."""
    import torch

    digest = hashlib.sha256()
    count = 0
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        count += tensor.numel()
    return count, digest.hexdigest()


def _state_size(model: Any) -> int:
    return sum(tensor.numel() for tensor in model.state_dict().values())


def recording_conditions(
    model: Any, template: str, system_prompt: str | None, prompts: list[str], max_new_tokens: int, batch: int
) -> dict[str, Any]:
    """Everything a greedy answer of the model depends on, besides the prompt itself and the code that computes
    it (the quickstart adds that for the base model's answers it keeps)."""
    values, checksum = weights_checksum(model)
    return {
        "state_values": values,
        "state_sha256": checksum,
        **_cheap_conditions(template, system_prompt, prompts, max_new_tokens, batch),
    }


def _cheap_conditions(
    template: str, system_prompt: str | None, prompts: list[str], max_new_tokens: int, batch: int
) -> dict[str, Any]:
    return {
        "template_sha1": sha1_text(template),
        "system_prompt": system_prompt,
        "prompts_sha1": sha1_text("\n".join(prompts)),
        "max_new_tokens": max_new_tokens,
        "batch": batch,
    }


def shipped_answers(
    model: Any,
    template: str,
    system_prompt: str | None,
    prompts: list[str],
    max_new_tokens: int,
    batch: int,
    source: Path | None = None,
) -> dict[str, str]:
    """The shipped answers (`source`: another such file), where they were recorded under exactly these
    conditions; otherwise none."""
    try:
        shipped = json.loads((source or example_path(SHIPPED_ANSWERS)).read_text(encoding="utf-8"))
        recorded = shipped["recorded_with"]
        answers = dict(shipped["answers"])
    except Exception:  # a missing or unreadable file only means recording the answers
        return {}
    cheap = _cheap_conditions(template, system_prompt, prompts, max_new_tokens, batch)
    if any(recorded.get(key) != value for key, value in cheap.items()):
        return {}
    # Only a model of the recorded size is worth hashing (the default model: 0.5 GB, a second or two).
    if _state_size(model) != recorded.get("state_values"):
        return {}
    if weights_checksum(model) != (recorded["state_values"], recorded.get("state_sha256")):
        return {}
    return answers
