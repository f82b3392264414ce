"""sleeptrain against TRL and Unsloth on one GPU: LoRA (bf16) and QLoRA (4-bit NF4), on models of
Qwen2.5-0.5B's and Qwen2.5-1.5B's sizes, or the embedded default model itself.

usage: python benchmarks/gpu_speed.py OUT [--sizes 0.5b 1.5b default] [--modes lora qlora] [--epochs 10]
           [--rounds 1] [--contenders sleeptrain trl unsloth sleeptrain-unsloth sleeptrain-noprefix sleeptrain-gc
           sleeptrain-recipe sleeptrain-nullspace sleeptrain-sleep sleeptrain-second-sleep]
           [--tokenizer DIR]
           [--results FILE] [--budget SECONDS]

The models are the real configurations with random weights (what speed depends on), written once under OUT
with a chat tokenizer (the default model's, or --tokenizer DIR). Every contender trains the same
chat-formatted facts (`benchmarks/data/heldout_facts.jsonl`), batch 8, for the same epochs:

- sleeptrain: `sleeptrain train` on the same data (no question variants, summaries or anchors, and the answers
  as written, not as statements), its default backend; sleeptrain-unsloth: the same with `backend: unsloth`;
  sleeptrain-noprefix: the default backend without the shared-prefix pass; sleeptrain-gc: the default backend
  with `gradient_checkpointing: true` (what TRL does by default); sleeptrain-recipe: the default recipe's data
  and training (question variants, subject summaries, distilled anchors: more tokens than the others train, so
  compare tokens/s); sleeptrain-nullspace: the default recipe with `lora_null_space: 0.95` (its pass over the
  anchors that finds the directions runs before training starts: in the whole-process time, not in the
  training time); sleeptrain-sleep: the facts ingested as memories (untimed), then `sleeptrain sleep` on them
  (timed), with the default sleep recipe (its own wordings, summaries and anchors: compare tokens/s here too);
  sleeptrain-second-sleep: half the facts ingested and slept on, then the other half ingested (all untimed),
  then the second `sleeptrain sleep` timed, with `sleep.dreams: 1`: the sleep that chooses its replay by the
  model's losses and generates dreams before it trains (a first sleep has nothing to replay or dream of);
- trl, unsloth: the scripts a user would write (`benchmarks/gpu_contenders.py`).

Each run is a whole process, timed from start to exit; it also reports its own training time, tokens and
peak GPU memory. The contenders of one model and mode run one after another, round after round. Results go
to OUT/results.jsonl (or --results FILE) as they come, and a table (ratios against TRL) is printed at the
end; --budget stops starting new runs after that many seconds, so that a leased machine's time limit still
leaves the table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FACTS = HERE / "data" / "heldout_facts.jsonl"

# The published configurations of Qwen2.5-0.5B and Qwen2.5-1.5B (config.json on the hub).
QWEN25 = {
    "0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14),
    "1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12),
    # For trying the script on a CPU; not a real configuration.
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4),
}
# "default" is not a random model: it is the embedded default model itself (real weights), as the quickstart
# and the CPU speed check (`speed_vs_trl.py`) train it.
SIZES = sorted([*QWEN25, "default"])


def make_model(size: str, tokenizer_dir: str, target: Path) -> Path:
    """A random-weight Qwen2 model of the given size, in bf16, with the chat tokenizer beside it; for
    "default", the embedded default model."""
    if size == "default":
        from sleeptrain.models import default_model_path

        return default_model_path()
    if (target / "config.json").exists():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2Config

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = Qwen2Config(
        **QWEN25[size],
        num_key_value_heads=2,
        vocab_size=151936,
        max_position_embeddings=32768,
        rms_norm_eps=1e-6,
        rope_theta=1000000.0,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


def sleep_commands(model: Path, mode: str, epochs: int, work: Path, second: bool) -> tuple[list[list[str]], list[str]]:
    """sleeptrain-sleep: the memories go into a fresh store first (untimed; the hippocampus judges them with
    the same base model, the default model being out of reach on a leased machine), then `sleeptrain sleep`
    consolidates them with the default sleep recipe, timed. sleeptrain-second-sleep (`second`): half the
    facts ingested and slept on first, untimed, then the other half ingested and the second sleep timed."""
    recipe = work / "sleep.yaml"
    recipe.write_text(
        f"base_model: {model}\nadapter: {mode}\noutput_dir: {work}\nnum_epochs: {epochs}\n"
        + ("sleep:\n  dreams: 1\n" if second else "")
    )
    store = str(work / "memories.db")
    sleep = [sys.executable, "-m", "sleeptrain", "sleep", "--store", store, "--recipe", str(recipe), "--quiet"]

    def ingest(facts: Path) -> list[str]:
        judged_by = ["--recipe", str(recipe), "--json"]
        return [sys.executable, "-m", "sleeptrain", "memory", "ingest", str(facts), "--store", store, *judged_by]

    if not second:
        return [ingest(FACTS)], sleep
    lines = FACTS.read_text(encoding="utf-8").splitlines(keepends=True)
    first, rest = work / "facts-1.jsonl", work / "facts-2.jsonl"
    first.write_text("".join(lines[: len(lines) // 2]), encoding="utf-8")
    rest.write_text("".join(lines[len(lines) // 2 :]), encoding="utf-8")
    return [ingest(first), sleep, ingest(rest)], sleep


def command(contender: str, model: Path, mode: str, epochs: int, work: Path) -> list[str]:
    if contender.startswith("sleeptrain"):
        recipe = work / "recipe.yaml"
        recipe.write_text(
            f"base_model: {model}\nadapter: {mode}\n"
            f"backend: {'unsloth' if contender == 'sleeptrain-unsloth' else 'transformers'}\n"
            f"datasets:\n  - path: {FACTS}\n    type: qa\noutput_dir: {work}\nnum_epochs: {epochs}\n"
            + (
                ""  # sleeptrain-recipe: the default recipe (question variants, summaries, distilled anchors)
                if contender in ("sleeptrain-recipe", "sleeptrain-nullspace")
                else "learning_rate: 2e-4\nquestion_variants: 1\nsubject_summaries: false\nanchor_ratio: 0\n"
                "answer_statements: false\n"
            )
            + ("gradient_checkpointing: true\n" if contender == "sleeptrain-gc" else "")
            + ("lora_null_space: 0.95\n" if contender == "sleeptrain-nullspace" else "")
        )
        if contender == "sleeptrain-noprefix":
            # The same run with the shared-prefix pass off (the trainer's class attribute; no recipe key):
            # on a GPU that waits on kernel launches, its second decoder call may cost more than it saves.
            flip = (
                "import sys; from sleeptrain.training.loss import LabelledLogitsTrainer as T; "
                "T.share_prefix = False; from sleeptrain.cli import main; sys.argv[0] = 'sleeptrain'; main()"
            )
            return [sys.executable, "-c", flip, "train", str(recipe), "--quiet"]
        return [sys.executable, "-m", "sleeptrain", "train", str(recipe), "--quiet"]
    script = [sys.executable, str(HERE / "gpu_contenders.py"), contender]  # trl or unsloth
    return script + [str(model), str(FACTS), str(epochs), str(work)] + (["--qlora"] if mode == "qlora" else [])


def run_one(contender: str, model: Path, mode: str, epochs: int, work: Path, timeout: float) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    sleeps = contender in ("sleeptrain-sleep", "sleeptrain-second-sleep")
    if not sleeps:
        cmd = command(contender, model, mode, epochs, work)
    else:
        setup, cmd = sleep_commands(model, mode, epochs, work, second=contender == "sleeptrain-second-sleep")
        for step in setup:  # untimed
            done = subprocess.run(step, env=env, capture_output=True, text=True, timeout=timeout, cwd=HERE.parent)
            if done.returncode != 0:
                what = "memory ingest" if "ingest" in step else "the first sleep"
                return {"ok": False, "error": f"{what}: " + (done.stderr or done.stdout)[-3000:]}
    started = time.perf_counter()
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=HERE.parent)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout:.0f} s"}
    wall = time.perf_counter() - started
    if done.returncode != 0:
        return {"ok": False, "wall_s": round(wall, 2), "error": (done.stderr or done.stdout)[-3000:]}
    phases = {}
    if sleeps:
        record = json.loads((work / "adapters" / "latest" / "sleep.json").read_text())
        # Where the sleep's time went (load, replay chosen by loss, dreams, training ...), and how much it replayed.
        report, phases = record["metrics"], {**record["timings"], "replayed": len(record["replayed"])}
        phases["dreams"] = record["dreams"]
    elif contender.startswith("sleeptrain"):
        report = json.loads((work / "metrics.json").read_text())
    else:
        report = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
    keys = ("train_runtime_s", "train_tokens", "tokens_per_second", "peak_gpu_mb")
    return {"ok": True, "wall_s": round(wall, 2), **{k: report.get(k) for k in keys}, **phases}


def table(results: list[dict]) -> str:
    lines = [
        "| model | mode | contender | whole process s | training s | tokens/s | peak GPU MB | "
        "speed-up vs TRL (whole / training) | memory vs TRL |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple[str, str], dict[str, list[dict]]] = {}
    for r in results:
        groups.setdefault((r["size"], r["mode"]), {}).setdefault(r["contender"], []).append(r)

    def median(runs: list[dict], key: str) -> float | None:
        values = [r[key] for r in runs if r.get("ok") and r.get(key) is not None]
        return statistics.median(values) if values else None

    for (size, mode), by_contender in groups.items():
        trl = by_contender.get("trl", [])
        trl_wall, trl_train, trl_mem = (median(trl, k) for k in ("wall_s", "train_runtime_s", "peak_gpu_mb"))
        for name, runs in by_contender.items():
            if not any(r["ok"] for r in runs):
                lines.append(f"| {size} | {mode} | {name} | failed | | | | | |")
                continue
            wall, train, tps, mem = (
                median(runs, k) for k in ("wall_s", "train_runtime_s", "tokens_per_second", "peak_gpu_mb")
            )
            ratio = f"{trl_wall / wall:.2f}× / {trl_train / train:.2f}×" if trl_wall and trl_train else ""
            memory = f"{mem / trl_mem:.2f}×" if trl_mem and mem else ""
            shown_mem = f"{mem:.0f}" if mem is not None else "n/a"
            cells = [size, mode, name, f"{wall:.1f}", f"{train:.1f}", f"{tps:.0f}", shown_mem, ratio, memory]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--sizes", nargs="+", default=["0.5b", "1.5b"], choices=SIZES)
    parser.add_argument("--modes", nargs="+", default=["lora", "qlora"], choices=["lora", "qlora"])
    parser.add_argument("--contenders", nargs="+", default=["sleeptrain", "trl", "unsloth", "sleeptrain-unsloth"])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--tokenizer", default=None, help="A chat tokenizer folder; default: the default model's.")
    parser.add_argument("--results", type=Path, default=None, help="Where the JSONL results go; default OUT/.")
    parser.add_argument("--budget", type=float, default=None, help="Seconds after which no run is started.")
    args = parser.parse_args()
    started = time.perf_counter()
    if args.tokenizer is None:
        from sleeptrain.models import default_model_path

        args.tokenizer = str(default_model_path())
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.results or args.out / "results.jsonl"
    results = []
    for size in args.sizes:
        if args.budget and time.perf_counter() - started > args.budget - 45:
            break
        model = make_model(size, args.tokenizer, args.out / f"qwen2.5-{size}-random")
        for mode in args.modes:
            for round_number in range(args.rounds):
                for contender in args.contenders:
                    left = args.budget - (time.perf_counter() - started) if args.budget else args.timeout
                    if left < 45:  # no contender finishes in less; a run cut short tells nothing
                        print(f"budget spent: {size} {mode} {contender} not run", flush=True)
                        continue
                    work = args.out / "runs" / f"{size}-{mode}-{contender}-{round_number}"
                    result = run_one(contender, model, mode, args.epochs, work, min(args.timeout, left))
                    result = {"size": size, "mode": mode, "contender": contender, "round": round_number, **result}
                    results.append(result)
                    with log.open("a") as f:
                        f.write(json.dumps(result) + "\n")
                    shown = {k: v for k, v in result.items() if k != "error"}
                    print(json.dumps(shown), flush=True)
                    if not result["ok"]:
                        print(f"  {contender} failed: {result['error'][-1500:]}", flush=True)
    print(table(results))


if __name__ == "__main__":
    main()
