"""`sleeptrain quickstart`: the main job, end to end on the default model.

Teach the bundled facts about a handful of fictional people, ask before and after (the training questions,
paraphrases of them, and general-knowledge questions that must not be lost), and write DIR/summary.json.
The trained adapter is checked the way a user would: plain transformers + peft loading the saved folder.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sleeptrain.config import DatasetConfig, Recipe
from sleeptrain.evaluation.recall import ProbeResult, accuracy_by_kind, read_probes, score_probes
from sleeptrain.examples import example_path
from sleeptrain.models import resolve_base_model
from sleeptrain.training.devices import to_compute_device
from sleeptrain.workflows.folders import make_output_folder
from sleeptrain.workflows.train import train

log = logging.getLogger("sleeptrain")


@dataclass
class QuickstartResult:
    summary: dict[str, Any]
    summary_path: Path


def quickstart(out: Path, recipe_overrides: dict[str, Any] | None = None, quiet: bool = False) -> QuickstartResult:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    out = make_output_folder(out, "--out")
    recipe = Recipe(
        datasets=[DatasetConfig(path=example_path("people/facts.jsonl"), type="qa")],
        output_dir=out / "run",
        **(recipe_overrides or {}),
    )
    people = read_probes(example_path("people/probes.jsonl"))
    general = read_probes(example_path("general_knowledge.jsonl"), kind="general")
    probes = people + general

    log.info("Step 1/3: asking the base model %d questions before training", len(probes))
    base_path = resolve_base_model(recipe.base_model)
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    # Asked on the GPU where there is one (fp32 either way), as training will run there.
    base = to_compute_device(AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32), recipe)
    before = score_probes(base, tokenizer, probes, progress=None if quiet else "asking")
    del base

    facts = sum(1 for _ in example_path("people/facts.jsonl").open(encoding="utf-8"))
    log.info(
        "Step 2/3: teaching %d facts about %d people (LoRA r=%d, %g epochs)",
        facts,
        len({p.subject for p in people}),
        recipe.lora_r,
        recipe.num_epochs,
    )
    trained = train(recipe, quiet=quiet)

    log.info("Step 3/3: asking again, through the saved adapter loaded with plain transformers + peft")
    tokenizer = AutoTokenizer.from_pretrained(str(trained.adapter_dir))
    model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32), str(trained.adapter_dir)
    )
    # Merging gives the same answers (fp32) and generates several times faster than unmerged LoRA layers.
    model = to_compute_device(model.merge_and_unload(), recipe)
    model.eval()
    after = score_probes(model, tokenizer, probes, progress=None if quiet else "asking again")

    summary = _summarise(before, after, trained, time.perf_counter() - started)
    summary_path = out / "summary.json"
    summary_path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return QuickstartResult(summary, summary_path)


def _summarise(before: list[ProbeResult], after: list[ProbeResult], trained: Any, seconds: float) -> dict[str, Any]:
    lost = [
        b.probe.question
        for b, a in zip(before, after, strict=True)
        if b.probe.kind == "general" and b.correct and not a.correct
    ]
    return {
        "before": accuracy_by_kind(before),
        "after": accuracy_by_kind(after),
        "general_known_before": sum(r.correct for r in before if r.probe.kind == "general"),
        "general_lost": lost,
        "adapter": str(trained.adapter_dir),
        "base_model": trained.base_model,
        "train": trained.metrics.as_dict(),
        "total_seconds": round(seconds, 1),
        "answers": [
            {
                "kind": b.probe.kind,
                "subject": b.probe.subject,
                "question": b.probe.question,
                "keywords": list(b.probe.keywords),
                "before": b.answer,
                "before_correct": b.correct,
                "after": a.answer,
                "after_correct": a.correct,
            }
            for b, a in zip(before, after, strict=True)
        ],
    }
