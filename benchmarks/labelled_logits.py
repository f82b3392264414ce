"""Forward + backward time of one LoRA training step on the default model: transformers' own causal-LM loss
(logits for every position) against sleeptrain's loss (the LM head only where a label is), interleaved
A B A B in one process on the same batches, under the same bf16 autocast as training.

usage: python benchmarks/labelled_logits.py [--steps 12] [--batch 8]
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()

    path = str(default_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"))
    recipe = Recipe(datasets=[DatasetConfig(path=HERE / "data" / "heldout_facts.jsonl")], output_dir="/tmp/unused")
    dataset = build_training_dataset(recipe, tokenizer, load_recipe_conversations(recipe))
    collate = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
    batches = [
        collate([dataset[i] for i in range(s, s + args.batch)]) for s in range(0, len(dataset) - args.batch, args.batch)
    ]
    trainer = LabelledLogitsTrainer(model=model, args=TrainingArguments(output_dir="/tmp/unused", use_cpu=True))

    def full(batch):  # transformers' loss: logits at every position
        return model(**batch).loss

    def labelled(batch):
        return trainer.compute_loss(model, batch)

    times: dict[str, list[float]] = {"full": [], "labelled": []}
    for step in range(args.steps):
        batch = batches[step % len(batches)]
        for name, loss_fn in (("full", full), ("labelled", labelled)):
            started = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = loss_fn(batch)
            loss.backward()
            model.zero_grad(set_to_none=True)
            if step > 0:  # the first step warms up both
                times[name].append(time.perf_counter() - started)
    full_s, labelled_s = statistics.median(times["full"]), statistics.median(times["labelled"])
    labelled_share = sum(int((b["labels"] != -100).sum()) for b in batches) / sum(
        int(b["attention_mask"].sum()) for b in batches
    )
    print(
        json.dumps(
            {
                "median_step_full_s": round(full_s, 3),
                "median_step_labelled_s": round(labelled_s, 3),
                "speedup": round(full_s / labelled_s, 2),
                "share_of_tokens_labelled": round(labelled_share, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
