"""Base models: the embedded default (SmolLM2-135M-Instruct from a PyPI wheel), local folders, hub ids,
GGUF files, 4-bit loading, the LoRA target modules of each family, and what their layers keep for the
backward pass.

May import: sleeptrain.config, sleeptrain.settings, sleeptrain.errors, sleeptrain.progress, sleeptrain.data (rendering),
transformers, peft, torch.
"""

from sleeptrain.models.default_model import default_model_path, gguf_to_safetensors
from sleeptrain.models.generation import generate_answers
from sleeptrain.models.lean_mlp import keep_fewer_mlp_activations
from sleeptrain.models.lean_norm import norms_feed_low_precision
from sleeptrain.models.loading import (
    LoadedModel,
    keep_lora_inputs_bf16,
    load_base_model,
    lora_target_modules,
    resolve_base_model,
    store_frozen_weights_in_bf16,
)

__all__ = [
    "LoadedModel",
    "default_model_path",
    "generate_answers",
    "gguf_to_safetensors",
    "load_base_model",
    "lora_target_modules",
    "resolve_base_model",
    "keep_fewer_mlp_activations",
    "keep_lora_inputs_bf16",
    "norms_feed_low_precision",
    "store_frozen_weights_in_bf16",
]
