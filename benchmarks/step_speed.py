"""Forward + backward time of one LoRA training step on the default model, for each speed measure of
`sleeptrain/training/` switched on in turn, interleaved in one process on the same batches of chat-formatted
held-out facts (so that a noisy machine slows every variant alike):

- fp32 weights + bf16 autocast, transformers' loss (logits at every position): what TRL's SFTTrainer runs;
- bf16 base weights (LoRA weights stay fp32);
- + the LM head only at labelled positions;
- + the batch's shared prefix (the template's system prompt) run once;
- + no cast of LoRA inputs to fp32 (autocast computes in bf16 anyway).

usage: python benchmarks/step_speed.py [--steps 10] [--batch 8]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from peft.helpers import disable_input_dtype_casting
from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, TrainingArguments

from sleeptrain.config import DatasetConfig, Recipe
from sleeptrain.data.mixing import build_training_dataset, load_recipe_conversations
from sleeptrain.models import default_model_path
from sleeptrain.training.loss import LabelledLogitsTrainer

HERE = Path(__file__).resolve().parent


def lora_model(path: str, dtype: torch.dtype):
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    return get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()

    path = str(default_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    models = {torch.float32: lora_model(path, torch.float32), torch.bfloat16: lora_model(path, torch.bfloat16)}
    recipe = Recipe(
        datasets=[DatasetConfig(path=HERE / "data" / "heldout_facts.jsonl")],
        output_dir="/tmp/unused",
        question_variants=1,
        subject_summaries=False,
    )
    dataset = build_training_dataset(recipe, tokenizer, load_recipe_conversations(recipe))
    collate = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
    batches = [
        collate([dataset[i] for i in range(s, s + args.batch)]) for s in range(0, len(dataset) - args.batch, args.batch)
    ]
    trainer = LabelledLogitsTrainer(
        model=models[torch.bfloat16], args=TrainingArguments(output_dir="/tmp/unused", use_cpu=True)
    )

    def trl_like(model, batch):
        return model(**batch).loss

    def ours(share_prefix: bool):
        def loss(model, batch):
            trainer.share_prefix = share_prefix
            return trainer.compute_loss(model, batch)

        return loss

    variants = {
        "fp32 weights, full logits (TRL)": (torch.float32, trl_like, False),
        "bf16 weights, full logits": (torch.bfloat16, trl_like, False),
        "+ labelled logits": (torch.bfloat16, ours(False), False),
        "+ shared prefix once": (torch.bfloat16, ours(True), False),
        "+ no fp32 cast of LoRA inputs": (torch.bfloat16, ours(True), True),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for step in range(args.steps + 1):
        batch = batches[step % len(batches)]
        for name, (dtype, loss_fn, no_cast) in variants.items():
            model = models[dtype]
            started = time.perf_counter()
            with disable_input_dtype_casting(model) if no_cast else contextlib.nullcontext():
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    loss = loss_fn(model, batch)
                loss.backward()
            model.zero_grad(set_to_none=True)
            if step > 0:  # the first step warms every variant up
                times[name].append(time.perf_counter() - started)
    reference = statistics.median(times["fp32 weights, full logits (TRL)"])
    for name, values in times.items():
        median = statistics.median(values)
        print(json.dumps({"variant": name, "median_step_s": round(median, 3), "speedup": round(reference / median, 2)}))


if __name__ == "__main__":
    main()
