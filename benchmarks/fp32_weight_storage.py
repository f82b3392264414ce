"""Peak memory and step time of fp32 LoRA training with the frozen weights stored in fp32 (as loaded) or in
bf16 (`bf16_storage`, sleeptrain/models/bf16_storage.py), on a randomly initialised model of a published
configuration: what a CPU without native bf16 runs.

Each variant runs in its own process, alternating A B A B: a few LoRA steps through sleeptrain's loss on
batches of 8 chat-formatted held-out facts, after the heap is trimmed and the kernel's peak-memory mark
reset (so the peak is the steps', not the loading's).

usage: python benchmarks/fp32_weight_storage.py [--size 0.5b|default] [--rounds 2] [--steps 3]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Qwen2.5-0.5B's published shape (random weights); "default": the default model's own config, read from its
# cached folder (random weights too, so both sizes are built the same way).
QWEN25_05B = dict(
    hidden_size=896,
    intermediate_size=4864,
    num_hidden_layers=24,
    num_attention_heads=14,
    num_key_value_heads=2,
    vocab_size=151936,
    tie_word_embeddings=True,
)
SIZES = ("0.5b", "default")


def _peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_variant(size: str, storage: bool, steps: int) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, TrainingArguments

    from sleeptrain.config import DatasetConfig, Recipe
    from sleeptrain.data.mixing import build_training_dataset, load_recipe_conversations
    from sleeptrain.models import default_model_path
    from sleeptrain.training import ready_base_for_adapter
    from sleeptrain.training.loss import LabelledLogitsTrainer

    if size == "0.5b":
        config = AutoConfig.for_model("qwen2", **QWEN25_05B)
    else:
        config = AutoConfig.from_pretrained(str(default_model_path()))
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    recipe = Recipe(
        datasets=[DatasetConfig(path=HERE / "data" / "heldout_facts.jsonl")],
        output_dir="/tmp/unused",
        bf16=False,
        bf16_storage=storage,
    )
    model = get_peft_model(
        ready_base_for_adapter(recipe, model),
        LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"),
    )
    tokenizer = AutoTokenizer.from_pretrained(str(default_model_path()))
    dataset = build_training_dataset(recipe, tokenizer, load_recipe_conversations(recipe))
    collate = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
    trainer = LabelledLogitsTrainer(model=model, args=TrainingArguments(output_dir="/tmp/unused", use_cpu=True))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    columns = ("input_ids", "attention_mask", "labels")
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM, the peak resident memory
    times = []
    for step in range(steps):
        batch = collate([{k: dataset[i][k] for k in columns} for i in range(8 * step, 8 * step + 8)])
        started = time.perf_counter()
        loss = trainer.compute_loss(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - started)
        libc.malloc_trim(0)  # as training/run.py's ReturnFreedMemory does after every step
    return {"bf16_storage": storage, "peak_mb": round(_peak_mb()), "median_step_s": round(statistics.median(times), 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", choices=SIZES, default="0.5b")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--variant", choices=["fp32", "bf16"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.size, args.variant == "bf16", args.steps)))
        return
    results: dict[str, list[dict]] = {"fp32": [], "bf16": []}
    for _ in range(args.rounds):
        for variant in ("fp32", "bf16"):
            command = [sys.executable, __file__, "--size", args.size, "--steps", str(args.steps), "--variant", variant]
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            results[variant].append(json.loads(out.strip().splitlines()[-1]))
            print(variant, results[variant][-1], flush=True)
    peak = {v: statistics.median(r["peak_mb"] for r in rows) for v, rows in results.items()}
    step = {v: statistics.median(r["median_step_s"] for r in rows) for v, rows in results.items()}
    print(
        f"{args.size}: peak {peak['fp32']:.0f} -> {peak['bf16']:.0f} MB ({peak['bf16'] / peak['fp32']:.2f}x), "
        f"step {step['fp32']:.2f} -> {step['bf16']:.2f} s ({step['fp32'] / step['bf16']:.2f}x the speed)"
    )


if __name__ == "__main__":
    main()
