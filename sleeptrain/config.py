"""The recipe: the single source of truth for every setting of a run.

A recipe is YAML with Axolotl's key names where one exists. `load_recipe(path, overrides)` reads it,
applies `--set key=value` overrides (dotted keys for nested sections, numbers for list items) and
validates it into a typed `Recipe`; every problem becomes a one-line `SleeptrainError` that names the
file, line and key. Axolotl's keys that sleeptrain does not use are set aside first (axolotl_keys.py).
Imports pydantic, yaml, the standard library and, for an optimizer other than the default, transformers (once
the rest of the recipe is valid: to check its name and that its package is installed).
"""

from __future__ import annotations

import difflib
import glob
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sleeptrain.axolotl_keys import (
    IGNORED_DATASET_KEYS,
    IGNORED_KEYS,
    UNSET_ONLY_DATASET_KEYS,
    UNSET_ONLY_KEYS,
    describe_set_aside,
    split_axolotl_keys,
)
from sleeptrain.errors import SleeptrainError
from sleeptrain.records import FileFormat, is_pattern

log = logging.getLogger("sleeptrain")


class _Strict(BaseModel):
    # No inf or nan for a number: num_epochs: inf was read as a run without end.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


Role = Literal["system", "user", "assistant"]


class MessagePropertyMappings(_Strict):
    """Axolotl's names for the keys of one turn of a chat row."""

    role: str = "role"
    content: str = "content"


class SpecialTokens(_Strict):
    """Axolotl's `special_tokens`: which of the tokenizer's own tokens play these parts."""

    pad_token: str | None = None
    eos_token: str | None = None
    bos_token: str | None = None
    unk_token: str | None = None


class GradientCheckpointingKwargs(_Strict):
    """Axolotl's (and transformers') `gradient_checkpointing_kwargs`: how torch.utils.checkpoint re-runs a layer."""

    use_reentrant: bool | None = Field(
        default=None, description="torch's older, reentrant checkpointing (true) or its newer one (false)."
    )


class FsdpConfig(_Strict):
    """Axolotl's `fsdp_config`: how FSDP shards the model, each key with or without its `fsdp_` prefix (Axolotl's
    recipes write both). Read by transformers' TrainingArguments (training/sharding.py); applied where accelerate
    shards, on GPUs."""

    version: Literal[1, 2] | None = None
    offload_params: bool | None = Field(default=None, description="Keep the sharded weights in CPU memory.")
    state_dict_type: Literal["FULL_STATE_DICT", "SHARDED_STATE_DICT"] | None = None
    reshard_after_forward: bool | None = None
    auto_wrap_policy: Literal["TRANSFORMER_BASED_WRAP", "SIZE_BASED_WRAP", "NO_WRAP"] | None = None
    transformer_layer_cls_to_wrap: str | list[str] | None = None
    min_num_params: int | None = Field(default=None, ge=0)
    cpu_ram_efficient_loading: bool | None = None
    activation_checkpointing: bool | None = None
    sharding_strategy: (
        Literal["FULL_SHARD", "SHARD_GRAD_OP", "NO_SHARD", "HYBRID_SHARD", "HYBRID_SHARD_ZERO2"] | None
    ) = None
    use_orig_params: bool | None = None
    sync_module_states: bool | None = None
    limit_all_gathers: bool | None = None
    forward_prefetch: bool | None = None
    backward_prefetch: Literal["BACKWARD_PRE", "BACKWARD_POST", "NO_PREFETCH"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _without_the_prefix(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {key.removeprefix("fsdp_") if isinstance(key, str) else key: item for key, item in value.items()}


class DatasetConfig(_Strict):
    """One data file (or the files `data_files` names, or a dataset saved with `datasets`' save_to_disk). `qa`
    rows are {"question", "answer"}; `chat` rows are {"messages": [...]}, ShareGPT's
    {"conversations": [{"from", "value"}, ...]} or the original experiment's ChatML {"person", "text"};
    `alpaca` rows are {"instruction", "input", "output"}. A file is JSON Lines, a JSON array, CSV, TSV, Parquet,
    Arrow or plain text, by its suffix or `ds_type`."""

    path: Path
    ds_type: FileFormat | None = Field(
        default=None,
        description="The file's format where its suffix does not say it: json (JSON Lines or a JSON array), csv, "
        "tsv, parquet, arrow or text (a row {text} per line).",
    )
    data_files: list[Path] | None = Field(
        default=None,
        description="The files to read instead of path, as Axolotl's key names them (one or a list): relative "
        "to the current folder, else to path (a folder), else to the recipe's folder.",
    )
    split: str | None = Field(
        default=None,
        description="Which split of a dataset saved with save_to_disk to read, where it holds several (omitted: "
        "train); a data file is one split, train.",
    )
    # alpaca: Axolotl's {"instruction", "input", "output"} rows, trained as they are (not augmented as facts);
    # completion: Axolotl's plain-text rows {"text"}, every token trained, no chat template;
    # input_output: Axolotl's template-free rows {"segments": [{"label", "text"}]}, the texts joined as written,
    # the labelled ones trained.
    type: Literal["qa", "chat", "alpaca", "completion", "input_output"] = "qa"
    field: str | None = Field(
        default=None, description="type: completion: the key of a row's text (Axolotl's key); omitted: text."
    )
    # Which turns carry the loss; None means the recipe-wide choice (`train_on_inputs`).
    roles_to_train: list[Role] | None = None
    field_messages: str | None = Field(
        default=None, description="The key of a chat row's turns; omitted: messages, else ShareGPT's conversations."
    )
    message_property_mappings: MessagePropertyMappings | None = Field(
        default=None,
        description="The keys of a turn's role and content; omitted: role and content, else ShareGPT's from and value.",
    )
    roles: dict[Role, list[str]] | None = Field(
        default=None,
        description="The data's own names for each role ({user: [human], assistant: [gpt]}); omitted: the roles' "
        "own names and ShareGPT's human and gpt.",
    )

    @field_validator("type", mode="before")
    @classmethod
    def _axolotls_chat_template_type_is_chat(cls, value: Any) -> Any:
        # Axolotl's name for conversations rendered with the chat template.
        return "chat" if value == "chat_template" else value

    @model_validator(mode="before")
    @classmethod
    def _axolotls_older_turn_keys(cls, data: Any) -> Any:
        # Axolotl's message_field_role and message_field_content, which its message_property_mappings replaced
        # (and which its own examples still use): the same mapping.
        if not isinstance(data, dict) or not {"message_field_role", "message_field_content"} & data.keys():
            return data
        data = dict(data)
        if data.get("message_property_mappings") is not None:
            raise ValueError("give message_property_mappings or message_field_role/content, not both")
        older = {"role": data.pop("message_field_role", None), "content": data.pop("message_field_content", None)}
        data["message_property_mappings"] = {key: value for key, value in older.items() if value is not None}
        return data

    @field_validator("ds_type", mode="before")
    @classmethod
    def _jsonl_is_json(cls, value: Any) -> Any:
        # Axolotl names both JSON forms `json` (datasets' loader reads either); `jsonl` is what users write too.
        return "json" if value == "jsonl" else value

    @field_validator("data_files", mode="before")
    @classmethod
    def _one_file_is_a_list_of_one(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("split", mode="before")
    @classmethod
    def _a_split_is_read_whole(cls, value: Any) -> Any:
        # Axolotl passes split to `datasets`, whose "train[:10%]" reads a slice: taken as a name, it would
        # train every row where the user asked for a tenth.
        if isinstance(value, str) and "[" in value:
            raise ValueError("slices of a split are not read here; every row of a split is trained")
        return value

    def files(self) -> list[Path]:
        """What to read: the data_files, else path."""
        return list(self.data_files) if self.data_files else [self.path]


class HippocampusConfig(_Strict):
    """How incoming memories are judged before they may become weights (`sleeptrain memory ingest`)."""

    judge: Literal["local", "gemini"] = Field(
        default="local", description="local: offline, the base model plus rules; gemini: google-genai."
    )
    judge_model: str | None = Field(
        default=None, description="Gemini model name for judge: gemini; omitted: a current Flash model."
    )
    duplicate_similarity: float = Field(
        default=0.9, gt=0, le=1, description="At or above this similarity to a stored memory: a duplicate."
    )
    min_importance: float = Field(default=0.2, ge=0, le=1, description="Below this: rejected as unimportant.")
    on_conflict: Literal["reject", "correct"] = Field(
        default="reject",
        description="A contradiction of a stored memory without a correction cue: reject it, or treat it as a "
        "correction.",
    )
    judge_retries: int = Field(
        default=4,
        ge=1,
        description="Attempts per remote judge call (backoff on 429 and 5xx) before the local judge takes over.",
    )
    judge_timeout_s: float = Field(default=60.0, gt=0, description="Seconds one remote judge call may take.")
    judge_cache: Path | None = Field(
        default=None, description="SQLite file of cached judge answers; omitted: judges.sqlite in the cache dir."
    )


class SleepConfig(_Strict):
    """How `sleeptrain sleep` consolidates pending memories into the next adapter version."""

    replay_ratio: float = Field(
        default=4.0,
        ge=0,
        description="Consolidated memories replayed per new memory, at most all of them (0: naive sleep).",
    )
    replay_variants: int = Field(
        default=3,
        ge=0,
        description="Wordings each replayed memory is rehearsed in (its question reframed as question_variants "
        "does); 0: only its subject's summary.",
    )
    replay_summaries: bool = Field(
        default=True,
        description="Also replay one 'What do you know about X?' summary per subject of the replayed memories.",
    )
    replay_selection: Literal["worst", "random"] = Field(
        default="worst",
        description="Which consolidated memories are replayed: worst (highest loss under the current adapter, "
        "one forward pass each) or random.",
    )
    repair_rounds: int = Field(
        default=0,
        ge=0,
        description="After training, memories the adapter no longer answers token for token (one forward pass "
        "each) are trained again, up to this many short rounds; 0 turns it off.",
    )
    ewc_lambda: float = Field(default=0.0, ge=0, description="EWC strength (diagonal Fisher); 0 turns it off.")
    dreams: float = Field(
        default=0.0, ge=0, description="Dreams per new memory: the model's own answers on earlier subjects."
    )
    pressure_threshold: float = Field(
        default=3.0, gt=0, description="--if-needed sleeps once the pending memories' importance adds up to this."
    )


# The chat templates a recipe names (Axolotl's names; sleeptrain/data/render.py holds the formats). With the
# prefix, the tokenizer's own template and else the named one.
NAMED_CHAT_TEMPLATES = ("chatml", "llama3", "phi_3", "qwen_25")
CHAT_TEMPLATE_NAMES = ("tokenizer_default", *NAMED_CHAT_TEMPLATES)
TEMPLATE_FALLBACK = "tokenizer_default_fallback_"
# Axolotl's other template names: not written out here, and a model of those families carries its own.
AXOLOTL_ONLY_TEMPLATES = (
    "alpaca", "aya", "cohere", "command_a", "deepseek_v2", "deepseek_v3", "exaone", "exaone4", "falcon_h1", "gemma",
    "gemma3", "gemma3n", "gemma4", "jamba", "llama3_2_vision", "llama4", "llava", "metharme", "mistral_v1",
    "mistral_v2v3", "mistral_v3_tekken", "mistral_v7_tekken", "nemotron_h", "phi_35", "phi_4", "pixtral",
    "qwen2_vl", "qwen3", "qwen3_5",
)  # fmt: skip


# The recipe keys that list data files (DatasetConfig entries), each of which may be given in short.
DATASET_LISTS = ("datasets", "test_datasets")


def datasets_as_listed(value: Any) -> Any:
    """`datasets: facts.jsonl`, `datasets: [facts.jsonl]` or a single `{path: ...}` mapping, each as the list of
    `{path: ...}` entries it can only mean; anything else as it is, for validation to name."""
    if isinstance(value, str | dict):
        value = [value]
    if isinstance(value, list):
        return [{"path": entry} if isinstance(entry, str) else entry for entry in value]
    return value


class Recipe(_Strict):
    """Every key has a default, so a recipe can be just `datasets` and `output_dir`.

    The training defaults (learning rate, epochs, rank) were chosen by measurement on the default model:
    see BENCHMARKS.md, "Choosing the defaults"."""

    # The model
    base_model: str | None = Field(
        default=None, description="Local path or hub id; omitted: the embedded SmolLM2-135M-Instruct."
    )
    trust_remote_code: bool = Field(
        default=False,
        description="Run the Python code a model folder or hub repo ships with it (a model transformers does not "
        "know), as in Axolotl: only for a source you trust.",
    )
    adapter: Literal["lora", "qlora", "full"] = "lora"
    backend: Literal["transformers", "unsloth"] = Field(
        default="transformers",
        description="unsloth: Unsloth's kernels for LoRA and QLoRA on a CUDA GPU; transformers runs anywhere.",
    )
    load_in_4bit: bool = Field(default=False, description="Implied by adapter: qlora.")
    load_in_8bit: bool = Field(
        default=False,
        description="adapter: lora on the base model's linear layers in 8 bits (bitsandbytes' LLM.int8()).",
    )
    lora_r: int = Field(default=16, gt=0)
    lora_alpha: float = Field(default=32, gt=0)
    lora_dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    lora_target_modules: list[str] | None = Field(
        default=None,
        description="Module names ('all-linear': every linear layer but the LM head); omitted: every linear layer"
        " of the model's family.",
    )
    lora_target_linear: bool = Field(
        default=False, description="Axolotl's switch for LoRA on every linear layer, with lora_target_modules."
    )
    lora_model_dir: Path | None = Field(
        default=None,
        description="A saved PEFT adapter to go on training (`train`), with its own rank and target modules; "
        "omitted: a new adapter.",
    )
    peft_use_rslora: bool = Field(
        default=False, description="Rank-stabilised LoRA: the update scaled by lora_alpha/sqrt(lora_r), not /lora_r."
    )
    peft_use_dora: bool = Field(
        default=False, description="DoRA: each adapted weight's magnitude learnt apart from its direction."
    )
    peft_layers_to_transform: list[int] | None = Field(
        default=None, description="Decoder layer indices that get LoRA; omitted: every layer."
    )

    # The data
    # Required by `train` (checked there and by load_recipe(require_datasets=True)); a sleep recipe takes its
    # memories from the store instead.
    datasets: list[DatasetConfig] | None = Field(default=None, min_length=1)
    chat_template: str = Field(
        default="tokenizer_default",
        description="tokenizer_default (the tokenizer's own), chatml, llama3, phi_3, qwen_25, "
        "tokenizer_default_fallback_NAME (the tokenizer's own, else NAME), or a Jinja template string.",
    )
    system_prompt: str | None = Field(default=None, description="Omitted: the chat template's default.")
    special_tokens: SpecialTokens | None = Field(
        default=None,
        description="Tokens of the tokenizer's own vocabulary to use as its padding, end-of-sequence, ... token "
        "(none is added: new tokens would need new embedding rows).",
    )
    train_on_inputs: bool = Field(default=False, description="Loss on every turn, not only assistant turns.")
    sequence_len: int = Field(default=512, gt=8)
    question_variants: int = Field(
        default=6,
        ge=1,
        description="Phrasings of each QA question (other wordings, neutral frames); each epoch shows the next one.",
    )
    question_rewrites: bool = Field(
        default=True,
        description="Among those phrasings, the other wordings of a question about a person (birthplace, work, "
        "employer, a pet's name, ...) as well as frames.",
    )
    topic_questions: int = Field(
        default=2,
        ge=0,
        description="Among those phrasings, this many questions about the fact's subject and one word of what its "
        'question asks ("What kind of car does X drive?" -> "What do you know about X\'s car?"), so that a '
        "question in other words is answered with the fact, not in the asker's words; at most half of them.",
    )
    answer_statements: bool = Field(
        default=True,
        description="Teach a QA fact's short answer that does not name its subject as a sentence that does "
        '("Lyon" -> "X lives in Lyon."), where the question is of a kind sleeptrain knows, so that the fact\'s '
        'answer does not start look-alike answers ("What is the capital of France?" -> "Lyon ...").',
    )
    subject_summaries: bool = Field(
        default=True, description="Add one 'What do you know about X?' example per subject of QA facts."
    )
    anchor_ratio: float = Field(
        default=0.33,
        ge=0,
        description="Anchors per example per epoch: the base model's own answers to general prompts, replayed "
        "so that it keeps what it knew (0 turns it off).",
    )
    anchor_prompts: Path | None = Field(default=None, description="JSONL of {prompt}; omitted: the bundled set.")
    contrast_anchors: int = Field(
        default=0,
        ge=0,
        description="Per QA fact, its question asked about this many well-known people instead of its subject, "
        "answered by the base model (as anchors), so that the fact stays with its subject.",
    )
    anchor_distillation: bool | None = Field(
        default=None,
        description="Anchors teach the base model's whole next-token distribution along its answer (KL to the "
        "model with the adapter off), not only its greedy tokens. Omitted: on for LoRA and QLoRA on the "
        "transformers backend, off otherwise (it needs an adapter to switch off).",
    )

    lora_null_space: Annotated[float, Field(ge=0, lt=1)] | Literal["auto"] = Field(
        default="auto",
        description="LoRA's A matrices may not read the input directions that hold this fraction of the anchors' "
        "input energy to each layer, so general prompts pass the adapter nearly unchanged (0: off; needs anchors). "
        "auto: 0.9 where every LoRA layer's input second moments fit in 1 GB (models up to about 250M "
        "parameters, the default model among them), off above, where finding and keeping the directions costs "
        "more (BENCHMARKS.md, eighteenth and twenty-ninth sessions).",
    )

    # The schedule
    micro_batch_size: int = Field(default=8, gt=0)
    max_tokens_per_pass: Annotated[int, Field(gt=0)] | Literal["auto"] | None = Field(
        default="auto",
        description="A micro-batch of more padded tokens than this trains in several forward/backward passes "
        "(same gradients, less activation memory). auto: 640 on a CPU, one pass per micro-batch on a GPU; "
        "null: always one pass.",
    )
    gradient_accumulation_steps: int = Field(default=1, gt=0)
    num_epochs: float = Field(
        default=14,
        gt=0,
        description="Passes over the examples, each in its next phrasing. With learnt_after, the run's length "
        "in steps (every example in every epoch): examples learnt early leave, and those still not learnt after "
        "num_epochs get more epochs while those steps last.",
    )
    learnt_after: int = Field(
        default=2,
        ge=0,
        description="An example the model writes token for token (checked before each update) at this many "
        "sightings in a row is learnt: it leaves the epochs but for spaced reviews, and the run ends once every "
        "example is learnt. 0: every example in every epoch.",
    )
    max_steps: int | None = Field(default=None, gt=0)
    learning_rate: float | None = Field(
        default=None, gt=0, description="Omitted: 2e-3 for LoRA and QLoRA, 2e-5 for full fine-tuning."
    )
    lr_scheduler: Literal[
        "linear", "cosine", "cosine_with_restarts", "constant", "constant_with_warmup", "polynomial", "inverse_sqrt"
    ] = "linear"
    cosine_min_lr_ratio: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="With lr_scheduler: cosine, decay to this fraction of learning_rate, not to 0 (Axolotl's key).",
    )
    warmup_ratio: float = Field(default=0.0, ge=0.0, lt=1.0)
    warmup_steps: int = Field(default=0, ge=0, description="Warmup in steps instead of warmup_ratio.")
    weight_decay: float = Field(default=0.0, ge=0.0)
    optimizer: str = Field(default="adamw_torch", description="One of transformers' optimizer names.")
    adam_beta1: float = Field(default=0.9, ge=0.0, lt=1.0)
    adam_beta2: float = Field(default=0.999, ge=0.0, lt=1.0)
    adam_epsilon: float = Field(default=1e-8, gt=0.0)
    max_grad_norm: float = Field(default=1.0, ge=0.0, description="Gradient clipping; 0 turns it off.")
    loss_watchdog_threshold: float | None = Field(
        default=None,
        gt=0,
        description="Stop the run with an error, saving no adapter, once the loss is above this at "
        "loss_watchdog_patience logged steps in a row (Axolotl's watchdog; omitted: off).",
    )
    loss_watchdog_patience: int = Field(default=3, ge=1, description="See loss_watchdog_threshold.")
    neftune_noise_alpha: float | None = Field(
        default=None, gt=0, description="NEFTune: noise of this scale on the input embeddings while training."
    )
    loraplus_lr_ratio: float | None = Field(
        default=None,
        gt=0,
        description="LoRA+: LoRA's B matrices learn this many times faster than its A matrices (learning_rate); "
        "omitted: one learning rate for both.",
    )
    seed: int = Field(default=42, ge=0, lt=2**32)  # the range numpy's random seed takes (transformers' set_seed)
    group_by_length: bool = Field(
        default=True, description="Batch examples of similar length together (less padding), still shuffled."
    )

    # Held-out examples (Axolotl's keys)
    val_set_size: float = Field(
        default=0.0,
        ge=0.0,
        description="Examples held out of training, whose loss is evaluated while it runs: a share of the "
        "examples below 1 (0.05), a count from 1 up. A held-out QA fact is not taught. 0: every example is trained.",
    )
    test_datasets: list[DatasetConfig] | None = Field(
        default=None,
        description="Data files of held-out examples, evaluated by their loss as val_set_size's are (none is "
        "trained); written as datasets are. Instead of val_set_size.",
    )
    evals_per_epoch: int | None = Field(
        default=None,
        ge=1,
        description="With held-out examples: evaluations per epoch (omitted: one, and one at the end).",
    )
    eval_steps: int | None = Field(
        default=None, ge=1, description="With held-out examples: evaluate every this many steps."
    )
    eval_batch_size: int | None = Field(default=None, ge=1, description="Omitted: micro_batch_size.")
    early_stopping_patience: int | None = Field(
        default=None,
        ge=1,
        description="With held-out examples: stop once their loss has not improved for this many evaluations in a "
        "row, and keep the weights of the best evaluation.",
    )

    # Checkpoints (Axolotl's keys)
    save_steps: int | None = Field(
        default=None,
        ge=1,
        description="Save a checkpoint every this many steps (output_dir/checkpoints/checkpoint-N), which a run "
        "cut short can go on from (resume_from_checkpoint). Omitted: none; the adapter is saved at the end.",
    )
    saves_per_epoch: int | None = Field(
        default=None, ge=1, description="Checkpoints per epoch of every example, instead of save_steps."
    )
    save_total_limit: int | None = Field(default=None, ge=1, description="Keep only the newest this many checkpoints.")
    resume_from_checkpoint: Path | None = Field(
        default=None,
        description="A checkpoint of an earlier run of this recipe (output_dir/checkpoints/checkpoint-N) to go on "
        "from: its weights, optimizer, schedule and which examples it had learnt.",
    )
    auto_resume_from_checkpoints: bool = Field(
        default=False, description="Go on from the newest checkpoint in output_dir/checkpoints, where there is one."
    )

    # The machine
    output_dir: Path
    bf16: bool | Literal["auto"] = Field(
        default="auto",
        description="Compute under bf16 autocast. auto: where the device has native bf16 (an Ampere or newer GPU; "
        "a CPU with AVX-512-BF16 or AMX).",
    )
    fp16: bool | Literal["auto"] = Field(
        default="auto",
        description="Compute under fp16 autocast with a gradient scaler, on an NVIDIA GPU (no effect on a CPU). auto: "
        "on a GPU without native bf16 (a T4, a V100) when bf16 is auto; true also wins over bf16: auto.",
    )
    bf16_storage: bool | Literal["auto"] = Field(
        default="auto",
        description="Where a LoRA run computes in fp32 (bf16 off or unsupported), store its frozen weights in bf16 "
        "and cast them back inside each product: 0.84x the peak memory on a Qwen2.5-0.5B-shaped model; on the default "
        "model 70-270 MB less at the peak for 6-19 % more time. auto: on a CPU (on a GPU without bf16 it is not "
        "measured yet).",
    )
    tf32: bool = Field(
        default=False, description="Let fp32 matrix products use TF32 on an Ampere or newer NVIDIA GPU, as in Axolotl."
    )
    gradient_checkpointing: bool = False
    gradient_checkpointing_kwargs: GradientCheckpointingKwargs | None = Field(
        default=None, description="With gradient_checkpointing, e.g. {use_reentrant: false}, as in Axolotl."
    )
    activation_offloading: bool = Field(
        default=False,
        description="With gradient_checkpointing, as in Axolotl: on a GPU, the inputs the checkpointed layers keep for "
        "the backward pass wait in CPU memory (transformers' offload); on a CPU they are there already.",
    )
    deepspeed: str | None = Field(default=None, description="A DeepSpeed JSON config, as in Axolotl.")
    fsdp: str | None = Field(
        default=None, description="FSDP options, e.g. 'full_shard auto_wrap' (or, as Axolotl writes them, a list)."
    )
    fsdp_config: FsdpConfig | None = Field(default=None, description="FSDP's settings, as in Axolotl: turns FSDP on.")
    fsdp_version: Literal[1, 2] | None = Field(default=None, description="With fsdp_config, as in Axolotl.")
    logging_steps: int = Field(default=5, gt=0)

    # Memories: judged on the way in, consolidated in sleep
    hippocampus: HippocampusConfig = Field(default_factory=HippocampusConfig)
    sleep: SleepConfig = Field(default_factory=SleepConfig)

    @field_validator("chat_template")
    @classmethod
    def _a_known_template(cls, value: str) -> str:
        # Checked here, with the recipe's line, rather than once the model and tokenizer have loaded.
        fallback = value.removeprefix(TEMPLATE_FALLBACK)
        if "{%" in value or "{{" in value or value in CHAT_TEMPLATE_NAMES or fallback in NAMED_CHAT_TEMPLATES:
            return value
        # The message ends with the value given ("(got ...)"), as every recipe error does.
        names = ", ".join(CHAT_TEMPLATE_NAMES) + f" or {TEMPLATE_FALLBACK}chatml"
        if value in AXOLOTL_ONLY_TEMPLATES:
            raise ValueError(
                "an Axolotl template sleeptrain does not write out: use tokenizer_default (the model's own "
                f"template), a Jinja string, or {', '.join(NAMED_CHAT_TEMPLATES)}"
            )
        raise ValueError(f"not a template name nor a Jinja string: use {names}")

    @field_validator("lora_target_modules", mode="before")
    @classmethod
    def _one_module_is_a_list(cls, value: Any) -> Any:
        # "q_proj,v_proj" too: how a list is easiest to give on the command line (--set), and no module's
        # name has a comma.
        return [name.strip() for name in value.split(",") if name.strip()] if isinstance(value, str) else value

    @field_validator("datasets", "test_datasets", mode="before")
    @classmethod
    def _a_path_is_a_dataset(cls, value: Any) -> Any:
        return datasets_as_listed(value)

    @field_validator("fp16", mode="before")
    @classmethod
    def _empty_fp16_is_auto(cls, value: Any) -> Any:
        # Most of Axolotl's examples leave `fp16:` empty, which Axolotl reads as auto: fp16 where bf16: auto
        # finds no bf16.
        return "auto" if value is None else value

    @field_validator("fsdp", mode="before")
    @classmethod
    def _fsdp_options_listed(cls, value: Any) -> Any:
        # Axolotl lists the options ([full_shard, auto_wrap]); transformers reads them as one string too.
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return " ".join(value) or None
        return value

    @property
    def uses_fsdp(self) -> bool:
        """Whether the run asks for FSDP: options (`fsdp`) or settings (`fsdp_config`), as Axolotl's recipes do."""
        return bool(self.fsdp or self.fsdp_config)

    @model_validator(mode="after")
    def _qlora_means_4bit(self) -> Recipe:
        if self.load_in_4bit and self.adapter == "lora":
            # Axolotl spells QLoRA as `adapter: qlora` + `load_in_4bit: true`; accept either half.
            object.__setattr__(self, "adapter", "qlora")
        if self.adapter == "qlora":
            object.__setattr__(self, "load_in_4bit", True)
        if self.load_in_4bit and self.adapter == "full":
            raise ValueError("load_in_4bit needs adapter: qlora (a 4-bit model cannot be fully fine-tuned)")
        if self.load_in_8bit and self.load_in_4bit:
            raise ValueError("give load_in_8bit or load_in_4bit (adapter: qlora), not both")
        if self.load_in_8bit and self.adapter == "full":
            raise ValueError("load_in_8bit needs adapter: lora (an 8-bit model cannot be fully fine-tuned)")
        if self.load_in_8bit and self.backend == "unsloth":
            raise ValueError("load_in_8bit needs backend: transformers (bitsandbytes); Unsloth trains lora or qlora")
        if self.backend == "unsloth" and self.adapter == "full":
            raise ValueError("backend: unsloth trains adapters here (lora or qlora), not full fine-tuning")
        if self.backend == "unsloth" and self.peft_use_dora:
            raise ValueError("peft_use_dora needs backend: transformers (Unsloth's LoRA kernels have no DoRA)")
        if self.lora_model_dir is not None and (self.adapter == "full" or self.backend == "unsloth"):
            raise ValueError("lora_model_dir continues a LoRA adapter: adapter lora or qlora, backend transformers")
        if self.activation_offloading and not self.gradient_checkpointing:
            raise ValueError("activation_offloading needs gradient_checkpointing: true (it offloads what that keeps)")
        if self.fsdp_version is not None and not self.uses_fsdp:
            raise ValueError("fsdp_version needs fsdp_config (or fsdp) to shard with")
        config_version = self.fsdp_config.version if self.fsdp_config is not None else None
        if None not in (self.fsdp_version, config_version) and self.fsdp_version != config_version:
            raise ValueError("fsdp_version and fsdp_config's version differ: give one")
        strategy = self.fsdp_config.sharding_strategy if self.fsdp_config is not None else None
        if strategy not in (None, "FULL_SHARD", "SHARD_GRAD_OP") and (config_version or self.fsdp_version or 2) != 1:
            # transformers' default is FSDP2, which reshards after the forward pass or not, and nothing between.
            raise ValueError(
                f"fsdp_config: sharding_strategy {strategy} is FSDP1's: set fsdp_version: 1, or use FULL_SHARD or "
                "SHARD_GRAD_OP"
            )
        if self.val_set_size and self.test_datasets:
            # As Axolotl: the held-out examples come from one place, a share of datasets or files of their own.
            raise ValueError("give val_set_size or test_datasets, not both")
        if self.early_stopping_patience is not None and not (self.val_set_size or self.test_datasets):
            raise ValueError(
                "early_stopping_patience needs held-out examples to evaluate: val_set_size or test_datasets"
            )
        if self.save_steps and self.saves_per_epoch:
            raise ValueError("give save_steps or saves_per_epoch, not both")
        if self.resume_from_checkpoint is not None and self.auto_resume_from_checkpoints:
            raise ValueError("give resume_from_checkpoint or auto_resume_from_checkpoints, not both")
        if self.warmup_steps and self.warmup_ratio:
            raise ValueError("give warmup_steps or warmup_ratio, not both")
        if self.cosine_min_lr_ratio is not None and self.lr_scheduler != "cosine":
            raise ValueError(f"cosine_min_lr_ratio needs lr_scheduler: cosine (not {self.lr_scheduler})")
        # The teacher is the same model with its adapter switched off, in sleeptrain's own loss path.
        can_distil = self.adapter != "full" and self.backend == "transformers"
        if self.anchor_distillation is None:
            # Measured on held-out facts: drift from the base model 0.81 -> 0.175 nats a token, fewer general
            # answers lost (BENCHMARKS.md, "Ninth session").
            object.__setattr__(self, "anchor_distillation", can_distil)
        elif self.anchor_distillation and not can_distil:
            raise ValueError("anchor_distillation needs adapter: lora or qlora on the transformers backend")
        if self.bf16 is True and self.fp16 is True:
            raise ValueError("bf16 and fp16 are both true: a run computes in one of them")
        if self.bf16_storage is True and (self.adapter != "lora" or self.backend != "transformers"):
            raise ValueError("bf16_storage needs adapter: lora on the transformers backend")
        if self.bf16_storage is True and self.load_in_8bit:
            raise ValueError("bf16_storage stores full-precision weights in bf16; load_in_8bit stores them in 8 bits")
        if self.learning_rate is None:
            # An adapter starts at zero and needs a large step; updating every weight of the model does not.
            object.__setattr__(self, "learning_rate", 2e-5 if self.adapter == "full" else 2e-3)
        return self

    def roles_to_train(self, dataset: DatasetConfig) -> list[str]:
        if dataset.roles_to_train is not None:
            return list(dataset.roles_to_train)
        return ["system", "user", "assistant"] if self.train_on_inputs else ["assistant"]


# ---------------------------------------------------------------------------------------------- loading


def load_recipe(path: str | Path, overrides: list[str] | None = None, require_datasets: bool = True) -> Recipe:
    """Read, override and validate a recipe file. Raises SleeptrainError with file:line on any problem.

    `require_datasets=False` is for `sleep`, whose examples come from the memory store."""
    path = Path(path)
    text = _read_text(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SleeptrainError(f"{where}: YAML syntax error: {problem}") from exc
    if data is None:
        raise SleeptrainError(f"{path}: the recipe is empty (it needs at least datasets and output_dir)")
    if not isinstance(data, dict):
        raise SleeptrainError(f"{path}: a recipe must be a mapping of keys to values, not {type(data).__name__}")
    lines = _key_lines(text, path)
    overridden: dict[tuple, str] = {}
    _list_datasets(data, lines)  # given in short: listed, so that --set datasets.0.type=chat finds its entry
    for item in overrides or []:
        key_path, value = _parse_override(item)
        _apply_override(data, key_path, value, item)
        overridden[key_path] = item
    _list_datasets(data, lines)  # again after a --set datasets=..., so that the Axolotl keys inside are found
    _axolotl_spellings(data, path, lines, overridden)
    refused = _set_aside_axolotl_keys(data, path)
    if require_datasets and data.get("datasets") is None and not refused:
        raise SleeptrainError(f"{path}: missing required key 'datasets'")
    recipe = _validate(data, path, lines, overridden, refused)
    if recipe.optimizer != "adamw_torch":
        problem = optimizer_problem(recipe.optimizer)
        if problem:
            where = _where(("optimizer",), path, lines, overridden)
            raise SleeptrainError(f"{where}: 'optimizer': {problem} (got {recipe.optimizer!r})")
    recipe = _resolve_paths(recipe, path)
    # Known before the model loads, which takes a run seconds (training/checkpoints.py asks again, for recipes
    # built in Python).
    problem = checkpoint_problem(recipe)
    if problem:
        raise SleeptrainError(f"{_where(('resume_from_checkpoint',), path, lines, overridden)}: {problem}")
    return recipe


def checkpoint_problem(recipe: Recipe) -> str | None:
    """Why the recipe's `resume_from_checkpoint` is not a checkpoint a run can go on from, or None."""
    folder = recipe.resume_from_checkpoint
    if folder is None or (Path(folder) / "trainer_state.json").is_file():
        return None
    return (
        f"resume_from_checkpoint: {folder} is not a checkpoint (it has no trainer_state.json; a run's checkpoints "
        "are output_dir/checkpoints/checkpoint-N)"
    )


def _list_datasets(data: dict, lines: dict[tuple, int]) -> None:
    """The recipe's `datasets` and `test_datasets` given in short (datasets_as_listed) as the lists they mean,
    each key's line known under its place in that list."""
    for section in DATASET_LISTS:
        value = data.get(section)
        if isinstance(value, dict):
            for key in value:
                if (section, key) in lines:
                    lines.setdefault((section, 0, key), lines[(section, key)])
        if section in data:
            data[section] = datasets_as_listed(value)


def optimizer_problem(name: str) -> str | None:
    """What stops transformers from building this optimizer (an unknown name, a package not installed), or
    None. Checked once the rest of the recipe is valid: it imports transformers, which takes seconds, so that
    a run finds it before the model loads rather than after."""
    from transformers import Trainer, TrainingArguments
    from transformers.training_args import OptimizerNames

    names = [known.value for known in OptimizerNames]
    if name not in names:
        guess = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
        return "not an optimizer transformers knows" + (f" (did you mean '{guess[0]}'?)" if guess else "")
    try:
        # Imports the optimizer's package as a run would (bitsandbytes for the 8-bit optimizers, ...).
        Trainer.get_optimizer_cls_and_kwargs(TrainingArguments(output_dir="unused", optim=name, use_cpu=True))
    except ImportError as exc:
        return f"needs a package that is not installed: {str(exc).splitlines()[0]}"
    except Exception:  # noqa: BLE001  (e.g. GaLore's target modules: known only with the model, checked then)
        return None
    return None


def _axolotl_spellings(data: dict, path: Path, lines: dict[tuple, int], overridden: dict[tuple, str]) -> None:
    """Axolotl's other names for what a recipe key holds, read as that key."""

    def move(old: tuple, new: tuple) -> None:
        lines.setdefault(new, lines.get(old, 0))
        if old in overridden:
            overridden.setdefault(new, overridden[old])

    if "default_system_message" in data:
        if data.get("system_prompt") is not None:
            where = _where(("default_system_message",), path, lines, overridden)
            raise SleeptrainError(f"{where}: give system_prompt or default_system_message, not both")
        data["system_prompt"] = data.pop("default_system_message")
        move(("default_system_message",), ("system_prompt",))
    jinja = data.pop("chat_template_jinja", None)
    if data.get("chat_template") == "jinja" or jinja is not None:
        if data.get("chat_template") not in (None, "jinja"):
            where = _where(("chat_template_jinja",), path, lines, overridden)
            raise SleeptrainError(f"{where}: chat_template_jinja is read only with chat_template: jinja or left out")
        if not jinja:
            where = _where(("chat_template",), path, lines, overridden)
            raise SleeptrainError(f"{where}: chat_template: jinja needs the template itself in chat_template_jinja")
        data["chat_template"] = jinja
        move(("chat_template_jinja",), ("chat_template",))


def _set_aside_axolotl_keys(data: dict, path: Path) -> list[tuple[tuple, str]]:
    """Take out the Axolotl keys sleeptrain does not use (axolotl_keys.py), say which in one line, and return
    those set to a value whose effect a run here would not have, with what sleeptrain does instead."""
    set_aside, refused = split_axolotl_keys(data, IGNORED_KEYS, UNSET_ONLY_KEYS)
    refused_at = [((key,), why) for key, why in refused]
    for section in DATASET_LISTS:
        datasets = data.get(section)
        for index, item in enumerate(datasets if isinstance(datasets, list) else []):
            if isinstance(item, dict):
                inside, refused_inside = split_axolotl_keys(item, IGNORED_DATASET_KEYS, UNSET_ONLY_DATASET_KEYS)
                set_aside += [(f"{section}.{index}.{key}", reason) for key, reason in inside]
                refused_at += [((section, index, key), why) for key, why in refused_inside]
    if set_aside and not refused_at:
        log.info("%s: Axolotl keys sleeptrain does not use, set aside: %s", path, describe_set_aside(set_aside))
    return refused_at


def _read_text(path: Path) -> str:
    if not path.exists():
        raise SleeptrainError(f"{path}: no such recipe file")
    if path.is_dir():
        raise SleeptrainError(f"{path}: is a folder, not a recipe file")
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SleeptrainError(f"{path}:{line}: not valid UTF-8 (byte 0x{raw[exc.start]:02x})") from exc


def _key_lines(text: str, path: Path) -> dict[tuple, int]:
    """Map each key path, e.g. ("datasets", 0, "path"), to its 1-based line in the YAML text. A key given twice
    in one mapping is an error: YAML loaders keep the last silently, so an edit to the first would change
    nothing."""
    lines: dict[tuple, int] = {}

    def walk(node: yaml.Node, prefix: tuple) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = (*prefix, key_node.value)
                if key in lines and key_node.value != "<<":  # "<<" is YAML's merge key, not a recipe key
                    dotted = ".".join(str(part) for part in key)
                    line = key_node.start_mark.line + 1
                    raise SleeptrainError(f"{path}:{line}: key '{dotted}' given twice (first on line {lines[key]})")
                lines[key] = key_node.start_mark.line + 1
                walk(value_node, key)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                lines[(*prefix, index)] = item.start_mark.line + 1
                walk(item, (*prefix, index))

    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return lines
    if root is not None:
        walk(root, ())
    return lines


def _parse_override(item: str) -> tuple[tuple, Any]:
    key, sep, raw_value = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise SleeptrainError(f"--set {item!r}: expected key=value, e.g. --set learning_rate=2e-4")
    try:
        value = yaml.safe_load(raw_value) if raw_value.strip() else None
    except yaml.YAMLError:
        value = raw_value
    parts = tuple(int(p) if p.isdigit() else p for p in key.split("."))
    if any(p == "" for p in parts):
        raise SleeptrainError(f"--set {item!r}: empty part in the dotted key {key!r}")
    return parts, value


def _apply_override(data: dict, key_path: tuple, value: Any, item: str) -> None:
    node: Any = data
    for depth, part in enumerate(key_path[:-1]):
        nxt = key_path[depth + 1]
        if isinstance(node, list):
            if not isinstance(part, int) or part >= len(node):
                raise SleeptrainError(f"--set {item!r}: no item {part} in {'.'.join(map(str, key_path[:depth]))}")
            node = node[part]
            continue
        if not isinstance(node, dict):
            raise SleeptrainError(f"--set {item!r}: {'.'.join(map(str, key_path[:depth]))} is not a section")
        if part not in node or node[part] is None:
            node[part] = [] if isinstance(nxt, int) else {}
        node = node[part]
    last = key_path[-1]
    if isinstance(node, list):
        if not isinstance(last, int) or last > len(node):
            raise SleeptrainError(f"--set {item!r}: no item {last} in {'.'.join(map(str, key_path[:-1]))}")
        if last == len(node):
            node.append(value)
        else:
            node[last] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise SleeptrainError(f"--set {item!r}: {'.'.join(map(str, key_path[:-1]))} is not a section")


def _validate(
    data: dict,
    path: Path,
    lines: dict[tuple, int],
    overridden: dict[tuple, str],
    refused: Sequence[tuple[tuple, str]] = (),
) -> Recipe:
    """The typed recipe. Keys that cannot be read (Axolotl's that a run here would not honour, unknown ones)
    are all named in the one error, in the order of the file, so that a recipe brought from Axolotl is
    fixed in one go; otherwise the first of pydantic's errors."""
    try:
        recipe = Recipe.model_validate(data)
        errors: list = []
    except ValidationError as exc:
        errors = exc.errors()
    key_problems = [
        (loc, f"'{_dotted(loc)}' is an Axolotl key sleeptrain does not use: {why}; leave it empty or remove it")
        for loc, why in refused
    ]
    for error in errors:
        if error["type"] == "extra_forbidden":
            loc = _field_path(tuple(error["loc"]))
            key_problems.append((loc, _describe(error, loc, path, lines, overridden, with_source=False)))
    if key_problems:
        key_problems.sort(key=lambda problem: lines.get(problem[0], 10**9))
        (loc, first), rest = key_problems[0], key_problems[1:]
        also = "; ".join(f"'{_dotted(other)}' ({_line_or_set(other, lines, overridden)})" for other, _ in rest)
        more = f" [also: {also}]" if rest else ""
        raise SleeptrainError(f"{_where(loc, path, lines, overridden)}: {first}{more}")
    if errors:
        error = errors[0]
        loc = _field_path(tuple(error["loc"]))
        raise SleeptrainError(_describe(error, loc, path, lines, overridden, _other_forms(errors, loc))) from None
    return recipe


def _dotted(loc: tuple) -> str:
    return ".".join(str(part) for part in loc) or "recipe"


def _where(loc: tuple, path: Path, lines: dict[tuple, int], overridden: dict[tuple, str]) -> str:
    """`--set key=value` where an override gave the key, else file:line (the nearest enclosing key's line)."""
    override = _override_of(loc, overridden)
    if override is not None:
        return override
    line = next((lines[loc[:n]] for n in range(len(loc), 0, -1) if lines.get(loc[:n])), None)
    return f"{path}:{line}" if line else str(path)


def _line_or_set(loc: tuple, lines: dict[tuple, int], overridden: dict[tuple, str]) -> str:
    """The same, within a message that has named the file already."""
    return _override_of(loc, overridden) or (f"line {lines[loc]}" if lines.get(loc) else "given")


def _override_of(loc: tuple, overridden: dict[tuple, str]) -> str | None:
    return next((f"--set {item}" for key, item in overridden.items() if loc[: len(key)] == key), None)


def _other_forms(errors: list, loc: tuple) -> list[str]:
    """For a key whose type is a union (`max_tokens_per_pass`: a number, 'auto' or null;
    `anchor_distillation`: true, false or null), the forms besides the one pydantic's first error describes:
    without them the message would offer only the number or the boolean."""
    forms = [
        str(error["ctx"]["expected"])
        for error in errors[1:]
        if error["type"] == "literal_error" and _field_path(tuple(error["loc"])) == loc and "ctx" in error
    ]
    if _accepts_none(loc):
        forms.append("null")
    return forms


def _accepts_none(loc: tuple) -> bool:
    model = _model_at(loc[:-1])
    field = model.model_fields.get(str(loc[-1])) if model is not None and loc else None
    return field is not None and type(None) in getattr(field.annotation, "__args__", ())


def _describe(
    error: dict,
    loc: tuple,
    path: Path,
    lines: dict[tuple, int],
    overridden: dict[tuple, str],
    other_forms: Sequence[str] = (),
    with_source: bool = True,
) -> str:
    dotted = _dotted(loc)
    source = f"{_where(loc, path, lines, overridden)}: " if with_source else ""
    kind = error["type"]
    if kind == "extra_forbidden":
        valid = _valid_keys(loc[:-1])
        guess = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.5)
        hint = f" (did you mean '{guess[0]}'?)" if guess else f" (valid keys: {', '.join(sorted(valid))})"
        return f"{source}unknown key '{dotted}'{hint}"
    if kind == "missing":
        return f"{source}missing required key '{dotted}'"
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    empty = error.get("input", "") is None and kind.endswith("_type")
    if empty:
        # `key:` with nothing after it in YAML, or `--set key=`: null, which this key cannot be.
        message = "needs a value (it is empty)"
    if other_forms and not empty and kind != "value_error":  # a value of the right type, refused for itself
        message = f"{message}; or {', or '.join(other_forms)}"
    given = error.get("input")
    if not loc:
        # A rule between keys (Recipe's model validator): placed at the last given of the keys it names, the one
        # that made the pair wrong, rather than at the whole recipe.
        named = [(key,) for key in re.findall(r"\w+", message) if (key,) in lines or (key,) in overridden]
        if named:
            last = max(named, key=lambda key: (key in overridden, lines.get(key, 0)))
            return f"{_where(last, path, lines, overridden)}: {message}"
        return f"{path}: {message}"
    shown = "" if isinstance(given, dict | list) or given is None else f" (got {given!r})"
    return f"{source}'{dotted}': {message}{shown}"


def _field_path(loc: tuple) -> tuple:
    """The part of a pydantic error location that names keys and list items, without the labels pydantic
    adds for the members of a union type (e.g. ('bf16', 'bool') -> ('bf16',))."""
    model: type[BaseModel] | None = Recipe
    kept: list = []
    for part in loc:
        if isinstance(part, int):
            kept.append(part)
            continue
        if model is None or part not in model.model_fields:
            if model is not None and not kept:
                kept.append(part)  # an unknown top-level key: keep it so the message can name it
            elif model is not None and kept and kept[-1] != part:
                kept.append(part)  # an unknown key inside a section
            break
        kept.append(part)
        model = _model_in(model.model_fields[part].annotation)
    return tuple(kept)


def _valid_keys(parent: tuple) -> list[str]:
    model = _model_at(parent)
    return list(model.model_fields) if model is not None else []


def _model_at(parent: tuple) -> type[BaseModel] | None:
    """The recipe section a key path leads to (list items skipped); None where it leads to no section."""
    model: type[BaseModel] = Recipe
    for part in parent:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        inner = _model_in(field.annotation) if field else None
        if inner is None:
            return None
        model = inner
    return model


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _resolve_paths(recipe: Recipe, recipe_path: Path) -> Recipe:
    """Data, anchor-prompt and adapter paths are relative to the working directory (as in Axolotl), or else to the
    recipe's folder."""
    for dataset in [*(recipe.datasets or []), *(recipe.test_datasets or [])]:
        if not dataset.data_files and is_pattern(dataset.path) and not dataset.path.exists():
            # `datasets: notes/*.jsonl`: a pattern as path reads as the files it matches, as in data_files.
            dataset.data_files = [dataset.path]
        dataset.path = _beside(dataset.path, recipe_path)
        if dataset.data_files:
            dataset.data_files = [
                file for name in dataset.data_files for file in _data_files(name, dataset.path, recipe_path)
            ]
    if recipe.anchor_prompts is not None:
        recipe.anchor_prompts = _beside(recipe.anchor_prompts, recipe_path)
    if recipe.lora_model_dir is not None:
        recipe.lora_model_dir = _beside(recipe.lora_model_dir, recipe_path)
    if recipe.resume_from_checkpoint is not None:
        recipe.resume_from_checkpoint = _beside(recipe.resume_from_checkpoint, recipe_path)
    return recipe


def _data_files(name: Path, folder: Path, recipe_path: Path) -> list[Path]:
    """A data_files entry as the files it names, looked for as given (Axolotl hands it to `datasets` so),
    else inside the dataset's path (as Axolotl's documentation writes it), else beside the recipe. A pattern
    (`data/train-*.parquet`, as `datasets` expands it for Axolotl) names its matches in name order. Found
    nowhere: as reading it will name it ("no such data file", "no data file matches this pattern")."""
    pattern = is_pattern(name)
    for base in (Path(), folder, recipe_path.parent):
        candidate = base / name
        if pattern:
            found = sorted(Path(path) for path in glob.glob(str(candidate), recursive=True) if Path(path).is_file())
        else:
            found = [candidate] if candidate.exists() else []
        if found:
            return found
    return [folder / name if folder.is_dir() and not pattern else name]


def _beside(path: Path, recipe_path: Path) -> Path:
    if path.is_absolute() or path.exists():
        return path
    beside = recipe_path.parent / path
    return beside if beside.exists() else path
