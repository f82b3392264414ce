"""Forward + backward time of one LoRA training step on the default model, for each speed measure of
`sleeptrain/training/` switched on in turn, interleaved in one process on the same batches of chat-formatted
held-out facts (so that a noisy machine slows every variant alike):

- fp32 weights + bf16 autocast, transformers' loss (logits at every position): what TRL's SFTTrainer runs;
- the frozen linear weights stored in bf16 (what `load_base_model` does for LoRA under bf16);
- + the LM head only at labelled positions;
- + the batch's shared prefix (the template's system prompt) run once.

usage: python benchmarks/step_speed.py [--steps 10] [--batch 8]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, TrainingArguments

from sleeptrain.config import DatasetConfig, Recipe
from sleeptrain.data.mixing import build_training_dataset, load_recipe_conversations
from sleeptrain.models import default_model_path
from sleeptrain.training.loss import LabelledLogitsTrainer

HERE = Path(__file__).resolve().parent


def lora_model(path: str, bf16_linears: bool):
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    if bf16_linears:
        embeddings = model.get_input_embeddings().weight
        for module in model.modules():
            if isinstance(module, torch.nn.Linear) and module.weight is not embeddings:
                module.to(torch.bfloat16)
    return get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()

    path = str(default_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    models = {False: lora_model(path, False), True: lora_model(path, True)}
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
    trainer = LabelledLogitsTrainer(model=models[True], args=TrainingArguments(output_dir="/tmp/unused", use_cpu=True))

    def trl_like(model, batch):
        return model(**batch).loss

    def ours(share_prefix: bool):
        def loss(model, batch):
            trainer.share_prefix = share_prefix
            return trainer.compute_loss(model, batch)

        return loss

    variants = {
        "fp32 weights, full logits (TRL)": (False, trl_like),
        "bf16 frozen linears, full logits": (True, trl_like),
        "+ labelled logits": (True, ours(False)),
        "+ shared prefix once": (True, ours(True)),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for step in range(args.steps + 1):
        batch = batches[step % len(batches)]
        for name, (bf16_linears, loss_fn) in variants.items():
            model = models[bf16_linears]
            started = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16):  # what Trainer's bf16 gives model.forward
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
