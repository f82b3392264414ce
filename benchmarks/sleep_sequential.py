"""Sequential sleeps on the default model: how well earlier facts are kept, and what each sleep costs.

Facts go into a fresh memory store in stages; after each stage, `sleeptrain.workflows.sleep` consolidates
them, and every stage so far is checked independently with plain transformers + peft on `adapters/latest`
(greedy answers through the chat template, keyword match of the direct probes).

usage:
  python benchmarks/sleep_sequential.py OUT two-stage [key=value ...]
      stage 1: the 25 facts of data/people/facts.jsonl (5 people); stage 2: 25 held-out facts (5 others)
  python benchmarks/sleep_sequential.py OUT five-sleeps [key=value ...]
      5 stages of 10 held-out facts (2 people each) from benchmarks/data/heldout_facts.jsonl
      (five-sleeps:3 stops after the third)
Overrides are recipe keys, e.g. sleep.replay_ratio=0 sleep.ewc_lambda=0.01 sleep.dreams=1.
Prints and appends to OUT/results.jsonl one JSON line per sleep.
  python benchmarks/sleep_sequential.py naive-tokens PLAN
      the tokens a naive sleep on each stage's facts alone trains (the cost reference), without training
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from sleeptrain.config import load_recipe
from sleeptrain.evaluation.recall import Probe, read_probes, score_probes
from sleeptrain.hippocampus import Memory, MemoryStore, Verdict
from sleeptrain.models import default_model_path
from sleeptrain.workflows.sleep import sleep, wordings_per_epoch

HERE = Path(__file__).parent
ROOT = HERE.parent


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def stages(plan: str) -> list[tuple[list[dict], list[Probe]]]:
    """Each stage's facts and their direct probes."""
    heldout = _rows(HERE / "data" / "heldout_facts.jsonl")
    heldout_probes = read_probes(HERE / "data" / "heldout_probes.jsonl")
    people = _rows(ROOT / "data" / "people" / "facts.jsonl")
    people_probes = read_probes(ROOT / "data" / "people" / "probes.jsonl")

    def direct(facts: list[dict], probes: list[Probe]) -> list[Probe]:
        asked = {f["question"] for f in facts}
        return [p for p in probes if p.kind == "direct" and p.question in asked]

    if plan == "two-stage":
        second = heldout[:25]
        return [(people, direct(people, people_probes)), (second, direct(second, heldout_probes))]
    if plan == "five-sleeps":
        return [(heldout[i : i + 10], direct(heldout[i : i + 10], heldout_probes)) for i in range(0, 50, 10)]
    raise SystemExit(f"unknown plan {plan!r}: two-stage or five-sleeps")


def recall(adapter: Path, probes_by_stage: list[list[Probe]]) -> list[float]:
    """Direct recall per stage, checked as a user would: the base model plus the saved adapter."""
    tokenizer = AutoTokenizer.from_pretrained(str(adapter))
    base = AutoModelForCausalLM.from_pretrained(str(default_model_path()), dtype=torch.float32)
    # Merged for speed only: generation through unmerged LoRA layers is several times slower on a CPU.
    model = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    model.eval()
    flat = [p for probes in probes_by_stage for p in probes]
    results = score_probes(model, tokenizer, flat)
    scores, start = [], 0
    for probes in probes_by_stage:
        marks = [r.correct for r in results[start : start + len(probes)]]
        scores.append(round(sum(marks) / len(marks), 4))
        start += len(probes)
    return scores


def naive_tokens(recipe, facts: list[dict]) -> int:
    """The tokens a naive sleep on these facts alone trains (what Trainer counts: non-padding tokens, every
    epoch), computed without training: the cost every strategy is compared with."""
    import math

    from sleeptrain.data.formats import read_anchor_prompts
    from sleeptrain.data.mixing import build_training_dataset
    from sleeptrain.models import load_base_model
    from sleeptrain.sleep.consolidate import new_conversations
    from sleeptrain.training import use_bf16
    from sleeptrain.training.anchors import anchor_conversations

    loaded = load_base_model(recipe, use_bf16(recipe.bf16, recipe.fp16))
    tokenizer = loaded.tokenizer
    memories = [
        Memory(f"n{i}", f["question"], f["question"], f["answer"], f.get("subject")) for i, f in enumerate(facts)
    ]
    new, _ = new_conversations(memories, memories, {}, recipe, recipe.seed)
    # The base model's anchor answers are cached by the sleeps already run, so this generates nothing.
    count = math.ceil(recipe.anchor_ratio * len(new))
    prompts = read_anchor_prompts(recipe.anchor_prompts)
    anchors = anchor_conversations(recipe, prompts, loaded.model, tokenizer, loaded.path, count)
    dataset = build_training_dataset(recipe, tokenizer, new + anchors)
    # A sleep trains every wording at once, num_epochs / wordings_per_epoch times over (see workflows/sleep.py).
    return int(sum(len(ids) for ids in dataset["input_ids"]) * recipe.num_epochs / wordings_per_epoch(recipe))


def main() -> None:
    if sys.argv[1] == "naive-tokens":  # python benchmarks/sleep_sequential.py naive-tokens PLAN
        recipe_file = Path("/tmp/naive-tokens-recipe.yaml")
        recipe_file.write_text("output_dir: /tmp/naive-tokens\n")
        recipe = load_recipe(recipe_file, sys.argv[3:], require_datasets=False)
        print(json.dumps([naive_tokens(recipe, facts) for facts, _ in stages(sys.argv[2])]))
        return
    out, plan, overrides = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
    out.mkdir(parents=True, exist_ok=True)
    recipe_file = out / "recipe.yaml"
    recipe_file.write_text(f"output_dir: {out / 'run'}\n")
    recipe = load_recipe(recipe_file, overrides, require_datasets=False)
    name, _, limit = plan.partition(":")  # five-sleeps:3 stops after the third sleep
    plan_stages = stages(name)[: int(limit) if limit else None]
    with MemoryStore(out / "memories.db") as store:
        for number, (facts, _) in enumerate(plan_stages, start=1):
            for fact in facts:
                memory = Memory(
                    store.new_id(),
                    f"{fact['question']} {fact['answer']}",
                    fact["question"],
                    fact["answer"],
                    fact.get("subject"),
                )
                store.add(memory, Verdict("store", 0.8, ["benchmark"]))
            started = time.perf_counter()
            result = sleep(store, recipe, quiet=True)
            wall = time.perf_counter() - started
            scores = recall(result.adapter_dir, [probes for _, probes in plan_stages[:number]])
            line = {
                "plan": plan,
                "overrides": overrides,
                "sleep": number,
                "recall_by_stage": scores,
                "earlier_min": min(scores[:-1]) if number > 1 else None,
                "new": scores[-1],
                "train_s": result.metrics.train_runtime_s,
                "train_tokens": result.metrics.train_tokens + result.repair_tokens,
                "repair_tokens": result.repair_tokens,
                "repaired": len(result.repaired),
                "unreproduced": len(result.unreproduced),
                "sleep_s": round(wall, 1),
                "timings": result.timings,
                "examples": result.examples,
                "replayed": len(result.replayed),
                "dreams": result.dreams,
                "anchors": result.anchors,
                "final_loss": result.metrics.final_loss,
            }
            print(json.dumps(line), flush=True)
            with (out / "results.jsonl").open("a") as handle:
                handle.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
