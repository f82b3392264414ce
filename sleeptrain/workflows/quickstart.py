"""`sleeptrain quickstart`: the main job, end to end on the default model.

Teach the bundled facts about a handful of fictional people, ask before and after (the training questions,
paraphrases of them, and general-knowledge questions that must not be lost), and write DIR/summary.json.
The trained adapter is checked the way a user would: plain transformers + peft loading the saved folder. The
base model's own answers are asked once per machine and kept in the cache folder, as its weights never change.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sleeptrain.config import DatasetConfig, Recipe
from sleeptrain.evaluation.recall import (
    Probe,
    ProbeResult,
    accuracy_by_kind,
    read_probes,
    score_answers_to_probes,
    score_probes,
)
from sleeptrain.examples import example_path
from sleeptrain.models import generate_answers, resolve_base_model
from sleeptrain.settings import load_settings
from sleeptrain.training.anchors import save_anchor_answers
from sleeptrain.training.devices import to_compute_device
from sleeptrain.training.shipped_anchors import recording_conditions
from sleeptrain.workflows.folders import make_cache_folder, make_output_folder
from sleeptrain.workflows.train import train

log = logging.getLogger("sleeptrain")

# How the probes are asked, before and after alike: generate_answers' defaults, named here because the base
# model's answers are cached under them.
ANSWER_TOKENS = 40
ANSWER_BATCH = 64


@dataclass
class QuickstartResult:
    summary: dict[str, Any]
    summary_path: Path


def quickstart(out: Path, recipe_overrides: dict[str, Any] | None = None, quiet: bool = False) -> QuickstartResult:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    make_cache_folder()  # first: a bad cache folder leaves no output folder behind
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
    before = score_answers_to_probes(probes, _base_model_answers(base, tokenizer, probes, quiet))
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
    after = score_probes(
        model,
        tokenizer,
        probes,
        max_new_tokens=ANSWER_TOKENS,
        batch_size=ANSWER_BATCH,
        progress=None if quiet else "asking again",
    )

    summary = _summarise(before, after, trained, time.perf_counter() - started)
    summary_path = out / "summary.json"
    summary_path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return QuickstartResult(summary, summary_path)


def _base_model_answers(base: Any, tokenizer: Any, probes: list[Probe], quiet: bool) -> list[str]:
    """The base model's greedy answers to the probes. Its weights never change, so the answers are kept in the
    cache folder under what they depend on (the weights' checksum, the model's and its generation's
    configuration, the template, the questions, the answer length, the batches, the libraries' versions, the
    device and its kind) and a later quickstart on this machine reads them instead of asking again: about 40 s
    of a quickstart on two CPU cores (BENCHMARKS.md, twenty-second session)."""
    import torch
    import transformers

    questions = [probe.question for probe in probes]
    conditions = recording_conditions(base, tokenizer.chat_template, None, questions, ANSWER_TOKENS, ANSWER_BATCH)
    generation = getattr(base, "generation_config", None)
    conditions |= {
        "config": base.config.to_json_string(),
        "generation_config": generation.to_json_string() if generation is not None else None,
        "versions": [torch.__version__, transformers.__version__],
        # Another device's kernels may break a near-tie another way, and a cache folder may be shared.
        "device": base.device.type,
        "device_kind": (
            torch.cuda.get_device_name(base.device)
            if base.device.type == "cuda"
            else torch.backends.cpu.get_cpu_capability()
        ),
    }
    key = hashlib.sha1(json.dumps(conditions, sort_keys=True).encode()).hexdigest()[:16]
    cache = load_settings().cache_dir / "answers" / f"{key}.json"
    try:
        remembered = json.loads(cache.read_text(encoding="utf-8"))
        answers = [remembered[question] for question in questions]
        log.info("The base model's answers read from %s (the same weights were asked the same questions)", cache)
        return answers
    except (OSError, ValueError, KeyError, TypeError):  # none yet, or a torn file: asked again
        pass
    answers = generate_answers(
        base,
        tokenizer,
        questions,
        max_new_tokens=ANSWER_TOKENS,
        batch_size=ANSWER_BATCH,
        progress=None if quiet else "asking",
    )
    save_anchor_answers(cache, dict(zip(questions, answers, strict=True)))
    return answers


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
