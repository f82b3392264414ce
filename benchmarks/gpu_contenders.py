"""The training scripts a GPU user would write without sleeptrain, for `benchmarks/gpu_speed.py`.

usage: python benchmarks/gpu_contenders.py trl|unsloth MODEL_DIR FACTS.jsonl EPOCHS OUT_DIR [--qlora]

- trl: `../shared/benchmarks/trl_baseline.py` on a GPU: SFTTrainer + PEFT LoRA r=16 on all-linear, batch 8,
  lr 2e-4, the model loaded in fp32 and trained under TRL's defaults (bf16 autocast, gradient
  checkpointing). With --qlora the base is loaded in bitsandbytes NF4 (double quantisation, bf16 compute).
- unsloth: what Unsloth's own notebooks do: `FastLanguageModel.from_pretrained` (bf16, or 4-bit with
  --qlora), `FastLanguageModel.get_peft_model` (r=16 on the seven projections, Unsloth's gradient
  checkpointing), then TRL's SFTTrainer with the same batch, learning rate and epochs.

Both print one JSON line: train_runtime_s, train_tokens (non-padding, as sleeptrain counts them),
tokens_per_second and peak_gpu_mb (torch.cuda.max_memory_allocated).
"""

from __future__ import annotations

import json
import sys
import time

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def chat_rows(facts: str) -> list[dict]:
    rows = [json.loads(line) for line in open(facts, encoding="utf-8") if line.strip()]
    return [
        {"messages": [{"role": "user", "content": r["question"]}, {"role": "assistant", "content": r["answer"]}]}
        for r in rows
    ]


def sft_config(out: str, epochs: int) -> object:
    import torch
    from trl import SFTConfig

    return SFTConfig(
        output_dir=out,
        per_device_train_batch_size=8,
        num_train_epochs=epochs,
        learning_rate=2e-4,
        save_strategy="no",
        report_to=[],
        max_length=256,
        logging_steps=50,
        bf16=True,
        include_num_input_tokens_seen="non_padding",
        use_cpu=not torch.cuda.is_available(),  # only to try the script on a machine without a GPU
    )


def load_trl(model_dir: str, qlora: bool) -> tuple[object, object, object]:
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    kwargs: dict = {"dtype": torch.float32}
    if qlora:
        kwargs = {
            "dtype": torch.bfloat16,
            "quantization_config": BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=torch.bfloat16,
            ),
            "device_map": {"": 0},
        }
    model = AutoModelForCausalLM.from_pretrained(model_dir, **kwargs)
    peft_config = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM")
    return model, tokenizer, peft_config


def load_unsloth(model_dir: str, qlora: bool) -> tuple[object, object, object]:
    import torch
    from unsloth import FastLanguageModel

    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=model_dir, max_seq_length=256, dtype=torch.bfloat16, load_in_4bit=qlora
    )
    model = FastLanguageModel.get_peft_model(
        model,
        r=16,
        lora_alpha=32,
        lora_dropout=0,
        target_modules=TARGETS,
        bias="none",
        use_gradient_checkpointing="unsloth",
        random_state=42,
    )
    return model, tokenizer, None


def main() -> None:
    tool, model_dir, facts, epochs, out = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
    qlora = "--qlora" in sys.argv[6:]
    # Unsloth must be imported before transformers, peft and trl.
    model, tokenizer, peft_config = (load_unsloth if tool == "unsloth" else load_trl)(model_dir, qlora)
    import torch
    from datasets import Dataset
    from trl import SFTTrainer

    trainer = SFTTrainer(
        model=model,
        args=sft_config(out, epochs),
        train_dataset=Dataset.from_list(chat_rows(facts)),
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    started = time.perf_counter()
    trainer.train()
    runtime = time.perf_counter() - started
    tokens = int(trainer.state.num_input_tokens_seen)
    peak = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    print(
        json.dumps(
            {
                "train_runtime_s": round(runtime, 2),
                "train_tokens": tokens,
                "tokens_per_second": round(tokens / runtime, 1),
                "peak_gpu_mb": round(peak, 1) if peak is not None else None,
            }
        )
    )


if __name__ == "__main__":
    main()
