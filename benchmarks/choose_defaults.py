"""Choose the training defaults by measurement: train on held-out facts with `sleeptrain.train` under a
set of overrides, then check the saved adapter independently with plain transformers + peft.

usage: python benchmarks/choose_defaults.py OUT_DIR [--facts F.jsonl --probes P.jsonl] [--general G.jsonl ...]
                                          [key=value ...]
The facts default to the held-out set (`data/heldout_facts.jsonl` and its probes); `--facts second` names the
second held-out set (`data/second_facts.jsonl`, `data/second_probes.jsonl`), written after the defaults were
chosen so that they can be checked on facts they were not tuned on; `--facts blind3` to `--facts blind6`, four
sets written by helper sessions that never saw the rules. The general questions default to
`data/general_knowledge.jsonl` (the repository's); each `--general` adds a file.
Prints one JSON line: the overrides, direct and paraphrase recall, general-knowledge questions lost, the drift
from the base model on them (mean KL per answer token, sleeptrain/evaluation/drift.py), time. The general
questions are also asked with a longer answer limit (LONG_ANSWER_TOKENS), before and after: an answer the base
model gets right only near the usual 40 tokens (the Mona Lisa's "da Vinci") can count as lost when training only
made it a few words longer, and this tells the two apart.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from sleeptrain.config import load_recipe
from sleeptrain.evaluation import accuracy_by_kind, answer_drift, read_probes, score_probes
from sleeptrain.models import default_model_path
from sleeptrain.workflows import train

HERE = Path(__file__).parent
ROOT = HERE.parent
LONG_ANSWER_TOKENS = 96


def lost_results(before: list, after: list) -> list:
    """The results after training of the questions answered right before and wrong after."""
    return [a for b, a in zip(before, after, strict=True) if b.correct and not a.correct]


# The held-out sets under data/, each NAME_facts.jsonl with NAME_probes.jsonl. blind3 to blind6 were written by
# helper sessions that saw none of sleeptrain's rules or data, only the file format (BENCHMARKS.md, twenty-fifth
# and twenty-sixth sessions): rules tuned on them stop measuring anything.
NAMED_SETS = tuple(sorted(path.name.removesuffix("_facts.jsonl") for path in (HERE / "data").glob("*_facts.jsonl")))


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Train on held-out facts and check the adapter independently.")
    parser.add_argument("out", type=Path)
    parser.add_argument("overrides", nargs="*", help="recipe keys, as key=value")
    parser.add_argument("--facts", default="heldout", help=f"{', '.join(NAMED_SETS)}, or a QA JSONL path")
    parser.add_argument("--probes", type=Path, help="the probes of --facts when it is a path")
    parser.add_argument("--general", type=Path, action="append", default=[], help="more general questions")
    args = parser.parse_intermixed_args()
    if args.facts in NAMED_SETS:
        args.probes = HERE / "data" / f"{args.facts}_probes.jsonl"
        args.facts = HERE / "data" / f"{args.facts}_facts.jsonl"
    elif args.probes is None:
        parser.error("--probes is needed with a --facts path")
    args.general = [ROOT / "data" / "general_knowledge.jsonl", *args.general]
    return args


def main() -> None:
    args = parse_arguments()
    out = args.out
    overrides = args.overrides
    out.mkdir(parents=True, exist_ok=True)
    recipe_file = out / "recipe.yaml"
    recipe_file.write_text(
        f"datasets:\n  - path: {Path(args.facts).resolve()}\n    type: qa\noutput_dir: {out / 'run'}\n"
    )
    recipe = load_recipe(recipe_file, overrides)
    started = time.perf_counter()
    result = train(recipe, quiet=True)
    wall = time.perf_counter() - started

    base_dir = str(default_model_path())
    tokenizer = AutoTokenizer.from_pretrained(str(result.adapter_dir))
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    general = [probe for path in args.general for probe in read_probes(path, kind="general")]
    before = score_probes(base, tokenizer, general)
    before_long = score_probes(base, tokenizer, general, max_new_tokens=LONG_ANSWER_TOKENS)
    adapted = PeftModel.from_pretrained(base, str(result.adapter_dir))
    # How far the general answers' distributions moved (evaluation/drift.py), against the same model with the
    # adapter off: the count of answers lost is too noisy to rank recipes by.
    drift = answer_drift(adapted, tokenizer, [p.question for p in general])
    # Merged for speed: generation through unmerged LoRA layers is several times slower on a CPU.
    model = adapted.merge_and_unload()
    model.eval()
    probes = read_probes(args.probes)
    after = score_probes(model, tokenizer, probes + general)
    scores = accuracy_by_kind(after)
    after_general = after[len(probes) :]
    lost = lost_results(before, after_general)
    after_long = score_probes(model, tokenizer, general, max_new_tokens=LONG_ANSWER_TOKENS)
    lost_long = [r.probe.question for r in lost_results(before_long, after_long)]
    wrong = [(r.probe.question, r.answer) for r in after[: len(probes)] if not r.correct]
    print(
        json.dumps(
            {
                "overrides": overrides,
                "facts": Path(args.facts).name,
                "direct": scores.get("direct"),
                "paraphrase": scores.get("paraphrase"),
                "general_base": sum(b.correct for b in before),
                "general_lost": len(lost),
                "general_kl": round(drift.mean_kl, 4),
                "train_s": result.metrics.train_runtime_s,
                "wall_s": round(wall, 1),
                "tokens_per_s": result.metrics.tokens_per_second,
                "final_loss": result.metrics.final_loss,
                "lost": [r.probe.question for r in lost],
                f"general_base_{LONG_ANSWER_TOKENS}": sum(b.correct for b in before_long),
                f"lost_{LONG_ANSWER_TOKENS}": lost_long,
                "wrong": wrong[:12],
                "lost_answers": [(r.probe.question, r.answer) for r in lost],
            },
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    main()
