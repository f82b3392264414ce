"""The Unsloth backend (`backend: unsloth`): Unsloth's model loading and LoRA patching, on a CUDA GPU.

Unsloth replaces attention, MLP and loss kernels with its own Triton ones, so it needs CUDA; everywhere
else sleeptrain says so before anything is loaded (`sleeptrain.backends.check_backend`). QLoRA does not
need Unsloth: the default backend runs it through bitsandbytes on any device. Imports unsloth lazily:
importing it patches transformers, which must not happen in a run that does not ask for it.
"""

from __future__ import annotations

import logging
from typing import Any

from sleeptrain.config import Recipe

log = logging.getLogger("sleeptrain")


def load_with_unsloth(recipe: Recipe, path: str, use_bf16: bool) -> tuple[Any, Any]:
    """The base model and tokenizer through `FastLanguageModel.from_pretrained` (4-bit for QLoRA)."""
    import torch
    from unsloth import FastLanguageModel

    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=path,
        max_seq_length=recipe.sequence_len,
        dtype=torch.bfloat16 if use_bf16 else torch.float16,
        load_in_4bit=recipe.load_in_4bit,
        trust_remote_code=recipe.trust_remote_code,
    )
    return model, tokenizer


def unsloth_lora(model: Any, recipe: Recipe, target_modules: list[str] | str) -> Any:
    """Wrap a model loaded by Unsloth with Unsloth's patched LoRA (a regular PEFT model underneath)."""
    from unsloth import FastLanguageModel

    return FastLanguageModel.get_peft_model(
        model,
        r=recipe.lora_r,
        lora_alpha=recipe.lora_alpha,
        lora_dropout=recipe.lora_dropout,
        use_rslora=recipe.peft_use_rslora,
        target_modules=target_modules,
        bias="none",
        use_gradient_checkpointing="unsloth" if recipe.gradient_checkpointing else False,
        random_state=recipe.seed,
    )
