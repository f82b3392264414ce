"""Axolotl's recipe keys that sleeptrain knows of but does not use, and what it does instead.

An Axolotl recipe carries many keys a run here has no use for, most of them left empty. So that such a
recipe loads as it is, `split_axolotl_keys` takes them out before the recipe is validated:
- keys that only tune speed or bookkeeping (`sample_packing`, `dataset_prepared_path`, ...) are set aside
  whatever their value, and the run names them in one line;
- keys that would change what is learnt or what a run writes (`tokens`, `wandb_project`, `float16`,
  ...) are set aside only when unset (empty, false or 0) or set to what sleeptrain does anyway
  (`train_on_eos: turn`); otherwise they are an error that says what sleeptrain does instead.
A key in neither table is still an unknown key (config.py). Imports only the standard library.
"""

from __future__ import annotations

from typing import Any

_EVAL_LOSS = "the held-out examples (val_set_size, test_datasets) are evaluated by their loss"
_NO_EVAL = "recall is measured by asking the model (evaluation/), not by generating during a run"
_TENSORBOARD = "runs log to TensorBoard in output_dir/logs"
_NO_HUB = "nothing is pushed; the adapter is a PEFT folder to upload as it is"
_CHECKPOINTS = "checkpoints are saved every save_steps, or saves_per_epoch times an epoch"
_TOKENIZER = "the base model's tokenizer is used as it is"
_ATTENTION = "PyTorch's scaled-dot-product attention, which picks flash kernels on a GPU where it can"
_BATCHING = "a batch is padded only to its longest example, and group_by_length batches examples of similar length"
_SFT = "sleeptrain trains by supervised fine-tuning only"
_KERNELS = "layers run as PyTorch and PEFT run them; fused GPU kernels would only make the run faster"

# Set aside whatever their value: they change how fast a run is or where it keeps its own files, not what it
# learns or writes.
IGNORED_KEYS: dict[str, str] = {
    "dataset_prepared_path": "examples are tokenised in memory at each run",
    "dataset_processes": "examples are tokenised in memory at each run",
    "dataset_keep_in_memory": "examples are tokenised in memory at each run",
    "sample_packing": _BATCHING,
    "eval_sample_packing": _BATCHING,
    "pad_to_sequence_len": _BATCHING,
    "sample_packing_eff_est": _BATCHING,
    "total_num_tokens": _BATCHING,
    "batch_flattening": _BATCHING,
    "flash_attention": _ATTENTION,
    "sdp_attention": _ATTENTION,
    "xformers_attention": _ATTENTION,
    "flash_attn_cross_entropy": _ATTENTION,
    "flash_attn_rms_norm": _ATTENTION,
    "flash_attn_fuse_qkv": _ATTENTION,
    "flash_attn_fuse_mlp": _ATTENTION,
    "flash_optimum": _ATTENTION,
    "attn_implementation": _ATTENTION,
    "fused_attn_kernel": _ATTENTION,
    "flex_attn_compile_kwargs": _ATTENTION,
    "lora_mlp_kernel": _KERNELS,
    "lora_qkv_kernel": _KERNELS,
    "lora_o_kernel": _KERNELS,
    "liger_rope": _KERNELS,
    "liger_rms_norm": _KERNELS,
    "liger_rms_norm_gated": _KERNELS,
    "liger_layer_norm": _KERNELS,
    "liger_glu_activation": _KERNELS,
    "liger_cross_entropy": _KERNELS,
    "liger_fused_linear_cross_entropy": _KERNELS,
    "cut_cross_entropy": _KERNELS,
    "resize_token_embeddings_to_32x": "the embeddings keep the model's size (a multiple of 32 only speeds some GPUs)",
    "low_cpu_mem_usage": "models load as transformers loads them",
    "model_type": "models load through AutoModelForCausalLM",
    "tokenizer_type": "tokenizers load through AutoTokenizer",
    "tokenizer_use_fast": "tokenizers load through AutoTokenizer",
    "is_llama_derived_model": "the model's family is read from its config",
    "is_qwen_derived_model": "the model's family is read from its config",
    "is_mistral_derived_model": "the model's family is read from its config",
    "is_falcon_derived_model": "the model's family is read from its config",
    "local_rank": "the launcher (accelerate launch, torchrun) sets each process's rank",
    "strict": "unknown keys are always an error",
    "debug": "--debug on the command line shows tracebacks",
    "save_safetensors": "adapters are always saved as safetensors",
    "use_tensorboard": _TENSORBOARD,
    "include_tokens_per_second": "metrics.json always holds tokens_per_second",
    "save_strategy": _CHECKPOINTS,
    "save_only_model": _CHECKPOINTS,
    "eval_strategy": "with val_set_size, evaluated evals_per_epoch times an epoch or every eval_steps",
    "eval_table_size": _NO_EVAL,
    "eval_max_new_tokens": _NO_EVAL,
    "wandb_watch": _TENSORBOARD,
    "wandb_log_model": _TENSORBOARD,
    "torch_compile": "the model runs eagerly",
    "torch_compile_backend": "the model runs eagerly",
    "torch_compile_mode": "the model runs eagerly",
    "auto_find_batch_size": "micro_batch_size and max_tokens_per_pass set the batch",
    "ddp_timeout": "accelerate's defaults",
    "ddp_bucket_cap_mb": "accelerate's defaults",
    "ddp_broadcast_buffers": "accelerate's defaults",
}

# Set aside only when unset: given a value, a user expects an effect this run would not have.
UNSET_ONLY_KEYS: dict[str, str] = {
    "do_causal_lm_eval": _EVAL_LOSS,
    "eval_causal_lm_metrics": _EVAL_LOSS,
    "gptq": "GPTQ models are not trained here",
    "float16": "frozen weights are not stored in fp16: fp16: true computes in fp16 under autocast on a GPU",
    "bfloat16": "frozen weights are stored in bf16 where that helps (bf16_storage: auto)",
    "tokens": _TOKENIZER + ": no token is added (special_tokens may name tokens it has)",
    "added_tokens_overrides": _TOKENIZER,
    "tokenizer_config": _TOKENIZER,
    "tokenizer_legacy": _TOKENIZER,
    "base_model_config": "the model's config is read from base_model",
    "revision_of_model": "base_model is loaded at its current revision (a local path pins one)",
    "overrides_of_model_config": "the model's config is used as it is",
    "overrides_of_model_kwargs": "the model loads with sleeptrain's own arguments",
    "bnb_config_kwargs": "adapter: qlora uses NF4 with double quantisation",
    "device_map": "accelerate places the model",
    "max_memory": "accelerate places the model",
    "gpu_memory_limit": "accelerate places the model",
    "lora_modules_to_save": "only the LoRA matrices are trained",
    "lora_fan_in_fan_out": "the Qwen, Phi and Llama families need no fan-in/fan-out flag",
    "peft_layer_replication": "LoRA as PEFT's LoraConfig builds it, without layer replication",
    "peft_init_lora_weights": "LoRA starts as PEFT initialises it (B = 0)",
    "loraplus_lr_embedding": "LoRA is not put on embeddings",
    "relora_steps": "one adapter is trained, without restarts",
    "lr_quadratic_warmup": "warmup is linear (warmup_ratio, warmup_steps)",
    "lr_scheduler_kwargs": "lr_scheduler's own defaults",
    "cosine_constant_lr_ratio": "lr_scheduler's own defaults",
    "lr_div_factor": "lr_scheduler's own defaults",
    "optim_args": "the optimizer's own defaults",
    "optim_target_modules": "the optimizer's own defaults",
    "shuffle_merged_datasets": "examples are always shuffled, interleaved across subjects",
    "dataset_exact_deduplication": "every row of the data files is trained",
    "dataset_shard_num": "every row of the data files is trained",
    "dataset_shard_idx": "every row of the data files is trained",
    "pretraining_dataset": _SFT,
    "rl": _SFT,
    "reward_model": _SFT,
    "process_reward_model": _SFT,
    "plugins": "sleeptrain runs no Axolotl plugin; Cut Cross Entropy's and Liger's are set aside (only speed)",
    "sequence_parallel_degree": "each process holds whole sequences",
    "context_parallel_size": "each process holds whole sequences",
    "unfrozen_parameters": "only the adapter (or, for adapter: full, every weight) is trained",
    "eot_tokens": "an answer ends at the chat template's end-of-turn token",
    "profiler_steps": "benchmarks/ holds the profiling scripts",
    "hub_model_id": _NO_HUB,
    "hub_strategy": _NO_HUB,
    "push_dataset_to_hub": _NO_HUB,
    "hf_use_auth_token": "data files are local",
    "wandb_project": _TENSORBOARD,
    "wandb_entity": _TENSORBOARD,
    "wandb_name": _TENSORBOARD,
    "wandb_run_id": _TENSORBOARD,
    "wandb_mode": _TENSORBOARD,
    "mlflow_tracking_uri": _TENSORBOARD,
    "mlflow_experiment_name": _TENSORBOARD,
    "mlflow_run_name": _TENSORBOARD,
    "use_comet": _TENSORBOARD,
    "comet_project_name": _TENSORBOARD,
}

# Inside one `datasets:` item.
IGNORED_DATASET_KEYS: dict[str, str] = {}
UNSET_ONLY_DATASET_KEYS: dict[str, str] = {
    "name": "path (or data_files) names the data",
    "shards": "every row of the data file is trained",
    "revision": "data files are local",
    "drop_system_message": "system turns are trained as the data file holds them",
    "train_on_eos": "the end of each trained turn is trained (turn)",
    "conversation": "set type: chat (or chat_template) and the recipe's chat_template",
}


# Values of those keys that ask for what sleeptrain does anyway: set aside like an empty key.
SAME_AS_SLEEPTRAIN: dict[str, tuple[Any, ...]] = {
    "shuffle_merged_datasets": (True,),
    "train_on_eos": ("turn",),
}

# Axolotl's plugins that change how fast a run is, not what it computes: fused kernels for the loss (its
# logits never held whole), the norms, the rotary embeddings and the gated MLPs. A `plugins` list of these only
# is set aside with their keys (IGNORED_KEYS).
SPEED_ONLY_PLUGINS = (
    "axolotl.integrations.cut_cross_entropy.CutCrossEntropyPlugin",
    "axolotl.integrations.liger.LigerPlugin",
)


def _speed_only(key: str, value: Any) -> bool:
    return key == "plugins" and isinstance(value, list) and all(plugin in SPEED_ONLY_PLUGINS for plugin in value)


def is_unset(value: Any) -> bool:
    """What Axolotl reads as 'off': an empty key, false, 0, an empty string, list or mapping."""
    if value is None or value is False or value in ("", "disabled"):
        return True
    if isinstance(value, list | dict):
        return not value
    return type(value) in (int, float) and value == 0


def split_axolotl_keys(
    section: dict, ignored: dict[str, str], unset_only: dict[str, str]
) -> tuple[list[tuple[str, str | None]], list[tuple[str, str]]]:
    """Take the Axolotl keys sleeptrain does not use out of one recipe section (in place). Returns the keys
    set aside, each with what sleeptrain does instead where it was given a value (None where it was left
    empty or set to what sleeptrain does anyway), and the keys refused: given a value whose effect a run
    here would not have, with what sleeptrain does instead."""
    set_aside: list[tuple[str, str | None]] = []
    refused: list[tuple[str, str]] = []
    for key in list(section):
        if key in ignored:
            set_aside.append((key, None if is_unset(section.pop(key)) else ignored[key]))
        elif key in unset_only:
            value = section.pop(key)
            if is_unset(value) or value in SAME_AS_SLEEPTRAIN.get(key, ()):
                set_aside.append((key, None))
            elif _speed_only(key, value):
                set_aside.append((key, _KERNELS))
            else:
                refused.append((key, unset_only[key]))
    return set_aside, refused


def describe_set_aside(set_aside: list[tuple[str, str | None]]) -> str:
    """One line: the keys given a value, grouped by what sleeptrain does instead, then how many were empty (or
    set to what sleeptrain does anyway)."""
    by_reason: dict[str, list[str]] = {}
    for key, reason in set_aside:
        if reason is not None:
            by_reason.setdefault(reason, []).append(key)
    parts = [f"{', '.join(keys)} ({reason})" for reason, keys in by_reason.items()]
    empty = sum(reason is None for _, reason in set_aside)
    if empty:
        parts.append(
            f"{empty} empty or at sleeptrain's own setting"
            if parts
            else f"{empty} keys empty or at sleeptrain's own setting"
        )
    return "; ".join(parts)
