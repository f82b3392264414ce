"""One training run on Trainer + PEFT: wrap the model as the recipe's `adapter` says, train, and measure.

Trainer runs the loop (devices, DDP/FSDP/DeepSpeed under `accelerate launch`, bf16 autocast, schedule,
progress bar); this module only configures it and records what a run cost.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import resource
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import PartialState
from torch.utils.tensorboard import SummaryWriter
from transformers import DataCollatorForSeq2Seq, PreTrainedModel, TrainingArguments
from transformers.integrations import TensorBoardCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback, TrainerCallback

from sleeptrain.backends import check_backend
from sleeptrain.config import Recipe
from sleeptrain.data.mixing import ExampleRows
from sleeptrain.errors import SleeptrainError
from sleeptrain.models import (
    LoadedModel,
    keep_fewer_mlp_activations,
    keep_lora_inputs_bf16,
    load_base_model,
    lora_target_modules,
    norms_feed_low_precision,
    store_frozen_weights_in_bf16,
)
from sleeptrain.models.bf16_storage import computes_linears_from_bf16
from sleeptrain.settings import bound_cpu_kernel_caches, load_settings
from sleeptrain.training.checkpoints import KeepScheduleInCheckpoints, checkpoint_to_resume, resume_schedule
from sleeptrain.training.early_stopping import StopWhenHeldOutLossStalls
from sleeptrain.training.loss import LabelledLogitsTrainer, NonFiniteLosses
from sleeptrain.training.null_space import directions_file, keep_lora_out_of_general_inputs, null_space_energy
from sleeptrain.training.precision import say_precision, use_bf16, use_fp16, use_tf32
from sleeptrain.training.schedule import EpochBatches, Learning
from sleeptrain.training.sharding import fsdp_arguments
from sleeptrain.training.teacher_states import (
    base_model_key,
    load_teacher_states,
    save_teacher_states,
    teacher_states_path,
)
from sleeptrain.wording import counted

log = logging.getLogger("sleeptrain")

# transformers 5 renamed TrainingArguments' gradient_checkpointing (the recipe keeps Axolotl's name) and warns
# on the old one; older releases know only the old one.
_CHECKPOINTING_ARGUMENT = (
    "activation_checkpointing"
    if "activation_checkpointing" in TrainingArguments.__dataclass_fields__
    else "gradient_checkpointing"
)


# Newer transformers move the activations checkpointed layers keep to CPU memory when asked (`offload`).
_TRAINER_OFFLOADS = (
    "offload" in inspect.signature(getattr(PreTrainedModel, "activation_checkpointing_enable", lambda: None)).parameters
)


def _checkpointing_arguments(recipe: Recipe) -> dict[str, Any]:
    """TrainingArguments' gradient checkpointing, with the recipe's arguments for torch.utils.checkpoint."""
    arguments: dict[str, Any] = {_CHECKPOINTING_ARGUMENT: recipe.gradient_checkpointing}
    if not recipe.gradient_checkpointing:
        return arguments
    given = (
        recipe.gradient_checkpointing_kwargs.model_dump(exclude_none=True)
        if recipe.gradient_checkpointing_kwargs
        else {}
    )
    if recipe.activation_offloading and not torch.cuda.is_available():
        # transformers' offloading pins host memory, which needs an accelerator; on a CPU the activations are in
        # its memory already.
        log.info("activation_offloading: no effect here (the activations are in CPU memory already)")
    elif recipe.activation_offloading:
        if not _TRAINER_OFFLOADS:
            raise SleeptrainError("activation_offloading needs a newer transformers (one whose Trainer offloads)")
        given["offload"] = True  # read by Trainer itself, not passed on to torch.utils.checkpoint
    arguments[f"{_CHECKPOINTING_ARGUMENT}_kwargs"] = given or None
    return arguments


def _sampling_arguments(group_by_length: bool) -> dict[str, Any]:
    """TrainingArguments' batch ordering: `train_sampling_strategy` in newer transformers, the
    `group_by_length` flag it replaced in older ones."""
    if "train_sampling_strategy" in TrainingArguments.__dataclass_fields__:
        return {"train_sampling_strategy": "group_by_length" if group_by_length else "random"}
    return {"group_by_length": group_by_length}


@dataclass
class RunMetrics:
    train_tokens: int
    train_runtime_s: float
    tokens_per_second: float
    peak_rss_mb: float
    final_loss: float
    # torch.cuda.max_memory_allocated over the run, on a GPU; None on a CPU.
    peak_gpu_mb: float | None
    steps: int
    epochs: float
    # Examples the model wrote token for token at its last sightings (training/schedule.py), of how many;
    # None where the run does not check (Unsloth's loss, several processes, sleep's runs).
    examples_learnt: int | None = None
    examples: int | None = None
    # The mean loss of the held-out examples (val_set_size) after training; None where none is held out.
    eval_loss: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_for_training(recipe: Recipe) -> tuple[LoadedModel, bool]:
    """Set this process up for a run (threads, seed) and load the base model as the recipe says; returns it
    and whether the run uses bf16. What `train` and `sleep` both start with."""
    from transformers import set_seed

    check_backend(recipe)
    bound_cpu_kernel_caches()
    threads = load_settings().threads
    if threads:
        torch.set_num_threads(threads)
    bf16 = use_bf16(recipe.bf16, recipe.fp16)
    say_precision(recipe.bf16, recipe.fp16)
    loaded = load_base_model(recipe, bf16, use_fp16=use_fp16(recipe.bf16, recipe.fp16))
    # Seeded once the base model is loaded, so that whatever loading drew from the random state (a first run
    # also converts the default model) cannot move the LoRA weights drawn next.
    set_seed(recipe.seed)
    return loaded, bf16


def _bf16_lora(recipe: Recipe) -> bool:
    """LoRA on transformers under bf16 autocast: the run whose frozen weights are stored in bf16 (8-bit ones
    stay as bitsandbytes holds them)."""
    return _full_precision_lora(recipe) and use_bf16(recipe.bf16, recipe.fp16)


def _full_precision_lora(recipe: Recipe) -> bool:
    return recipe.adapter == "lora" and not recipe.load_in_8bit and recipe.backend == "transformers"


def _fp32_lora_stored_in_bf16(recipe: Recipe) -> bool:
    """LoRA on transformers in fp32 arithmetic whose frozen weights are stored in bf16
    (models/bf16_storage.py); `bf16_storage: auto` is on where no GPU runs it."""
    if not _full_precision_lora(recipe) or use_bf16(recipe.bf16, recipe.fp16) or use_fp16(recipe.bf16, recipe.fp16):
        return False
    return recipe.bf16_storage is True or (recipe.bf16_storage == "auto" and not torch.cuda.is_available())


def ready_base_for_adapter(recipe: Recipe, model: Any) -> Any:
    """The base model as a PEFT adapter (new or loaded) should train on it: under bf16, LoRA's frozen
    weights stored in bf16 (see store_frozen_weights_in_bf16) and norms that hand them one bf16 copy and keep
    no fp32 input (models/lean_norm.py); gated MLPs that keep half the activations
    (models/lean_mlp.py; gradient checkpointing keeps fewer still); QLoRA with gradient checkpointing needs an input
    that requires grad, as the embeddings are frozen (what PEFT's prepare_model_for_kbit_training does besides
    upcasting every unquantized weight to fp32; see models/loading.py, _quantized_rest_for_bf16)."""
    if _bf16_lora(recipe):
        store_frozen_weights_in_bf16(model)
        norms_feed_low_precision(model)
    elif _fp32_lora_stored_in_bf16(recipe):
        store_frozen_weights_in_bf16(model, fp32_arithmetic=True)
    keep_fewer_mlp_activations(model, enabled=not recipe.gradient_checkpointing)
    if (recipe.load_in_4bit or recipe.load_in_8bit) and recipe.gradient_checkpointing:
        model.enable_input_require_grads()
    return model


def adapter_ready_to_train(recipe: Recipe, model: Any) -> Any:
    """A PEFT model (a new adapter or a loaded one) set up to train: no KV cache, and under bf16 LoRA, its
    LoRA layers take their bf16 inputs as they are (see keep_lora_inputs_bf16)."""
    if _bf16_lora(recipe):
        keep_lora_inputs_bf16(model)
    model.config.use_cache = False
    return model


def continue_adapter(recipe: Recipe, model: Any, folder: Path, what: str) -> Any:
    """A saved PEFT adapter (`folder`) on the base model, trainable and set up as a new one would be; `what`
    names the folder in errors. Its own rank, scale and target modules hold, not the recipe's."""
    from peft import PeftModel

    base = ready_base_for_adapter(recipe, model)
    try:
        model = PeftModel.from_pretrained(base, str(folder), is_trainable=True)
    except (OSError, ValueError, RuntimeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SleeptrainError(f"{what}: {folder}: the adapter does not load onto this base model ({reason})") from exc
    return adapter_ready_to_train(recipe, model)


def prepare_for_training(recipe: Recipe, model: Any) -> Any:
    """Wrap a base model for the recipe's adapter: LoRA, QLoRA (4-bit base + LoRA) or full fine-tuning."""
    if recipe.adapter == "full":
        model.config.use_cache = False
        return model
    if recipe.backend == "unsloth":
        from sleeptrain.models.unsloth_backend import unsloth_lora

        return unsloth_lora(model, recipe, lora_target_modules(model, recipe))
    from peft import LoraConfig, get_peft_model

    model = ready_base_for_adapter(recipe, model)
    layers = getattr(model.config, "num_hidden_layers", None)
    if recipe.peft_layers_to_transform and layers is not None:
        outside = sorted(i for i in recipe.peft_layers_to_transform if not 0 <= i < layers)
        if outside:
            raise SleeptrainError(
                f"peft_layers_to_transform: no layer {outside[0]} in this model (its layers are 0-{layers - 1})"
            )
    targets = lora_target_modules(model, recipe)
    config = LoraConfig(
        r=recipe.lora_r,
        lora_alpha=recipe.lora_alpha,
        lora_dropout=recipe.lora_dropout,
        target_modules=targets,
        layers_to_transform=recipe.peft_layers_to_transform,
        use_rslora=recipe.peft_use_rslora,
        use_dora=recipe.peft_use_dora,
        task_type="CAUSAL_LM",
    )
    model = adapter_ready_to_train(recipe, get_peft_model(model, config))
    trainable, total = model.get_nb_trainable_parameters()
    log.info(
        "LoRA r=%d on %s: %.2fM trainable of %.1fM",
        recipe.lora_r,
        targets if isinstance(targets, str) else ", ".join(targets),  # PEFT keeps them as a set, in no order
        trainable / 1e6,
        total / 1e6,
    )
    return model


def _keep_the_recipes_precision(args: TrainingArguments, bf16: bool, fp16: bool) -> None:
    """A run the recipe has computing in fp32 stays fp32 under `accelerate launch`. accelerate hands its config's
    mixed_precision to transformers, which takes it where neither bf16 nor fp16 is set: a recipe's `bf16: false`
    (or `auto` on a machine without native bf16) then trained under bf16 autocast after all, on a model loaded
    and set up for fp32. The recipe decides, and the line says so. Not under DeepSpeed, whose plugin has taken
    accelerate's precision into its own config by then."""
    if bf16 or fp16 or args.mixed_precision == "no" or args.deepspeed_plugin is not None:
        return
    log.info(
        "accelerate's mixed_precision %s set aside: the recipe computes in fp32 (bf16: true or fp16: true change it)",
        args.mixed_precision,
    )
    args.mixed_precision = "no"


def _scheduler_arguments(recipe: Recipe) -> dict[str, Any]:
    """The recipe's schedule as TrainingArguments take it: Axolotl's cosine_min_lr_ratio is transformers'
    cosine_with_min_lr schedule with that min_lr_rate."""
    if recipe.cosine_min_lr_ratio is not None:
        return {
            "lr_scheduler_type": "cosine_with_min_lr",
            "lr_scheduler_kwargs": {"min_lr_rate": recipe.cosine_min_lr_ratio},
        }
    return {"lr_scheduler_type": recipe.lr_scheduler}


def _evaluation_arguments(recipe: Recipe, eval_dataset: Any, rows: ExampleRows | None, rows_in_dataset: int) -> dict:
    """TrainingArguments' evaluation: none without held-out examples; else every `eval_steps`, or
    `evals_per_epoch` times in the steps a whole epoch of every example takes (one by default; epochs that
    train only what is not learnt yet are shorter, so those come more often than once an epoch)."""
    if eval_dataset is None:
        return {"eval_strategy": "no"}
    steps = recipe.eval_steps
    if steps is None:
        steps = max(1, _epoch_steps(recipe, rows, rows_in_dataset) // (recipe.evals_per_epoch or 1))
    return {
        "eval_strategy": "steps",
        "eval_steps": steps,
        "per_device_eval_batch_size": recipe.eval_batch_size or recipe.micro_batch_size,
        "prediction_loss_only": True,
    }


def _checkpoint_arguments(recipe: Recipe, rows: ExampleRows | None, rows_in_dataset: int) -> dict:
    """TrainingArguments' checkpoints: none unless the recipe asks for them (`save_steps`, `saves_per_epoch`).
    A run with the epoch schedule goes on from a checkpoint through its own sampler's state (schedule.py), so
    Trainer must not skip the batches it thinks were trained."""
    steps = recipe.save_steps
    if steps is None and recipe.saves_per_epoch:
        steps = max(1, _epoch_steps(recipe, rows, rows_in_dataset) // recipe.saves_per_epoch)
    if steps is None or rows is None:  # sleep trains each version afresh: no checkpoints
        return {"save_strategy": "no"}
    return {
        "save_strategy": "steps",
        "save_steps": steps,
        "save_total_limit": recipe.save_total_limit,
        "ignore_data_skip": True,
    }


def _epoch_steps(recipe: Recipe, rows: ExampleRows | None, rows_in_dataset: int) -> int:
    """The steps of one epoch of every example (and its share of anchors)."""
    per_epoch = len(rows.phrasings) + rows.anchors_per_epoch if rows is not None else rows_in_dataset
    return math.ceil(per_epoch / recipe.micro_batch_size / recipe.gradient_accumulation_steps)


def _loraplus_optimizer(recipe: Recipe, model: Any) -> Any:
    """PEFT's LoRA+ optimizer (AdamW, B matrices at loraplus_lr_ratio times the learning rate) when the recipe
    asks for it; None lets Trainer build its own from `optimizer`."""
    if not recipe.loraplus_lr_ratio or recipe.adapter == "full":
        return None
    from peft.optimizers import create_loraplus_optimizer

    return create_loraplus_optimizer(
        model,
        torch.optim.AdamW,
        lr=recipe.learning_rate,
        loraplus_lr_ratio=recipe.loraplus_lr_ratio,
        weight_decay=recipe.weight_decay,
        betas=(recipe.adam_beta1, recipe.adam_beta2),
        eps=recipe.adam_epsilon,
    )


class LossOnProgressBar(ProgressCallback):
    """Trainer's progress bar, with the latest loss (and examples learnt, of how many) on it instead of log
    dicts printed beside it."""

    def __init__(self, examples: int | None = None) -> None:
        super().__init__()
        self.examples = examples
        self.shown: dict[str, str] = {}

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if self.training_bar is None or not logs:
            return
        if "loss" in logs:
            self.shown["loss"] = f"{float(logs['loss']):.3f}"
            if "examples_learnt" in logs and self.examples:
                self.shown["learnt"] = f"{int(logs['examples_learnt'])}/{self.examples}"
        if "eval_loss" in logs:  # the held-out examples' (val_set_size), kept beside the training loss
            self.shown["eval"] = f"{float(logs['eval_loss']):.3f}"
        self.training_bar.set_postfix(self.shown, refresh=False)

    def on_prediction_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # The held-out examples' bar is drawn under the training bar, which tqdm does by moving the cursor up:
        # in a log file or a pipe that is a stray "\x1b[A" per evaluation. There the evaluation shows only as
        # its loss on the training bar.
        if self.training_bar is not None and not self.training_bar.fp.isatty():
            return
        super().on_prediction_step(args, state, control, **kwargs)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # A run that ends early because every example is learnt (training/schedule.py) ends its bar at full,
        # not at the step count Trainer planned for every example in every epoch.
        if self.training_bar is not None and state.global_step < self.training_bar.total:
            self.training_bar.total = state.global_step
            self.training_bar.refresh()
        super().on_train_end(args, state, control, **kwargs)


def _keep_the_best_evaluation(
    stopper: StopWhenHeldOutLossStalls, last_step: int, eval_loss: float | None
) -> float | None:
    """The held-out loss the saved weights have, after early_stopping_patience: the best evaluation's where its
    weights were put back; said in a line either way."""
    if stopper.stopped_at is not None:
        log.info(
            "early_stopping_patience: the held-out loss did not improve for %s after step %d (%.4f); stopped at "
            "step %d",
            counted(stopper.patience, "evaluation"),
            stopper.best_step,
            stopper.best_loss,
            stopper.stopped_at,
        )
    if stopper.keep_the_best(last_step):
        log.info(
            "early_stopping_patience: the weights of step %d (held-out loss %.4f) are saved, not the last step's "
            "(%d: %.4f)",
            stopper.best_step,
            stopper.best_loss,
            last_step,
            eval_loss,
        )
        return round(stopper.best_loss, 6)
    return eval_loss


class LossWatchdog(TrainerCallback):
    """Axolotl's loss watchdog: a loss above `threshold` at `patience` logged steps in a row stops the run,
    which then ends in an error instead of saving an adapter that has diverged. transformers has no such
    callback (its EarlyStoppingCallback reads evaluation metrics, and a sleeptrain run holds none out)."""

    def __init__(self, threshold: float, patience: int) -> None:
        self.threshold = threshold
        self.patience = patience
        self.high = 0
        self.tripped_at: tuple[int, float] | None = None

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if not logs or "loss" not in logs:
            return
        loss = float(logs["loss"])
        self.high = self.high + 1 if loss > self.threshold else 0
        if self.high >= self.patience:
            self.tripped_at = (state.global_step, loss)
            control.should_training_stop = True


class StopOnNonFiniteLoss(TrainerCallback):
    """A run whose loss stops being a number (nan or inf) stops, and ends in an error instead of saving an
    adapter. Without a gradient scaler the optimizer has by then written nan into the weights, and the run
    used to save that adapter and report a final loss of 0 (Trainer leaves such losses out of its logs).
    Under fp16's scaler a step whose loss overflows is skipped instead, and a single one is harmless; there it
    stops where every micro-batch since the last log overflowed (a model whose activations pass fp16's range
    does so at every step). The trainer counts the losses (`losses`), read where the loss is logged, which
    waits for the device anyway; transformers has no such check. (The callback holds the count, not the
    trainer: a reference back to it would keep the trainer and its progress bar alive past an interrupt.)"""

    def __init__(self, losses: NonFiniteLosses, scaled: bool) -> None:
        self.losses = losses
        self.scaled = scaled
        self.last_step = 0
        self.tripped_at: tuple[int, int] | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.last_step = state.global_step  # a resumed run starts past 0

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        not_finite, micro_batches = self.losses.take()
        first, self.last_step = self.last_step + 1, state.global_step
        if self.tripped_at is not None or not not_finite:
            return
        if not self.scaled or not_finite == micro_batches:
            self.tripped_at = (first, state.global_step)
            if logs is not None and "loss" in logs:
                # Trainer logs the mean of the finite losses before in a nan one's place (0.0 at first).
                logs["loss"] = float("nan")
            # Under several processes every one must leave the loop together; each reports after it instead.
            control.should_training_stop = args.world_size == 1


def _non_finite_loss_error(tripped_at: tuple[int, int], fp16: bool, recipe: Recipe) -> SleeptrainError:
    first, last = tripped_at
    steps = f"step {last}" if first >= last else f"steps {first}-{last}"
    if fp16:
        return SleeptrainError(
            f"fp16: the loss was not a number at every step of {steps} (the model's activations pass fp16's "
            "largest number, 65 504); training stopped and no adapter was saved; set fp16: false to compute in fp32"
        )
    rate = f"{recipe.learning_rate:g}"
    cause = (
        f"the base model's weights, or a learning_rate of {rate}, may be at fault"
        if first == 1
        else f"a lower learning_rate than {rate} may help"
    )
    return SleeptrainError(
        f"the loss was not a number (nan or inf) in {steps}; training stopped and no adapter was saved ({cause})"
    )


# On a CPU the peak memory of a run is the activations of its longest micro-batches (subject summaries,
# anchors, long conversations): at 640 padded tokens a pass, the defaults' 3-epoch run peaks at about two
# thirds of what TRL's takes, at the cost of a second pass for batches of 8 examples over 80 tokens
# (BENCHMARKS.md, "Passes of at most 640 tokens"). A GPU has the memory to spare, and a pass costs it kernel
# launches, so there each micro-batch stays one pass.
CPU_TOKENS_PER_PASS = 640


def tokens_per_pass(recipe: Recipe, device_type: str) -> int | None:
    """The most padded tokens one forward/backward pass takes (None: a micro-batch is one pass)."""
    if recipe.max_tokens_per_pass == "auto":
        return CPU_TOKENS_PER_PASS if device_type == "cpu" else None
    return recipe.max_tokens_per_pass


class ReturnFreedMemory(TrainerCallback):
    """After every step on a CPU, hand the heap's free pages back to the kernel (glibc's `malloc_trim`).

    glibc keeps what a step freed for later allocations, but a later step of a slightly longer batch needs
    slightly larger blocks, which the kept ones cannot hold: the heap grew with every epoch's longest batch,
    and the peak with it. Trimming measured no slower (BENCHMARKS.md, "Memory that grew with every step").
    PyTorch has no caching allocator on the CPU that would do this; elsewhere than glibc this does nothing."""

    def __init__(self) -> None:
        import ctypes
        import ctypes.util

        name = ctypes.util.find_library("c")
        library = ctypes.CDLL(name) if name else None
        self.malloc_trim = getattr(library, "malloc_trim", None)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.malloc_trim is not None:
            self.malloc_trim(0)


def _null_space_callback(
    energy: float,
    model: Any,
    dataset: Any,
    rows: ExampleRows,
    collate: Any,
    device: torch.device,
    base_key: dict[str, Any] | None,
    progress: bool,
) -> TrainerCallback:
    """The callback that keeps LoRA out of the anchors' input directions (training/null_space.py), measured on
    every distinct anchor of the dataset (a run of many epochs repeats them), or read from the cache where an
    earlier run on the same base model (`base_key`) and anchors found them. The anchors are batched by the
    training's own collator (`collate`). `progress`: bars over the finding, where the directions are not read
    from the cache. (The distilled anchors' teacher states are not taken from this pass: training/loss.py
    computes each anchor's alone, so that they do not depend on which anchors shared a batch.)"""
    anchors = dataset.select(rows.anchors)
    distinct = dict(zip(map(tuple, anchors["input_ids"]), anchors["labels"], strict=True))
    anchor_ids = sorted(distinct, key=len)  # batches of like length: little padding
    cache = directions_file(base_key, model, [list(ids) for ids in anchor_ids], energy)
    batches = (
        {
            key: value.to(device)
            for key, value in collate([{"input_ids": list(ids), "labels": distinct[ids]} for ids in chunk]).items()
        }
        for chunk in (anchor_ids[i : i + 16] for i in range(0, len(anchor_ids), 16))
    )
    return keep_lora_out_of_general_inputs(model, batches, energy, cache=cache, progress=progress)


def new_log_dir(logs: Path) -> Path:
    """A folder of its own under `logs` for this run's TensorBoard events, named by when it started.

    Event files of several runs in one folder are read as one run whose steps start over, so a second run
    into the same output_dir would draw its losses over the first's; a folder each shows them as runs.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder, count = logs / stamp, 1
    while folder.exists():
        count += 1
        folder = logs / f"{stamp}-{count}"
    return folder


def train_model(
    recipe: Recipe,
    model: Any,
    tokenizer: Any,
    dataset: Any,
    bf16: bool,
    save_to: Path,
    quiet: bool = False,
    passes: int = 1,
    rows: ExampleRows | None = None,
    base_path: str | None = None,
    eval_dataset: Any = None,
) -> RunMetrics:
    """Train `model` on the tokenized `dataset` with Trainer, save the adapter (or, for full fine-tuning,
    the model) with its tokenizer to `save_to`, and return what the run cost. `passes`: how many of the
    recipe's epochs the dataset already holds, laid out one after another. `rows`: where each example's
    phrasings and the anchors are in the dataset, for epochs that train only what is not learnt yet
    (training/schedule.py); the dataset then holds each row once and `passes` does not apply. `base_path`:
    the base model's folder, whose distilled-anchor states are then cached between runs
    (training/teacher_states.py). `eval_dataset`: held-out examples, whose loss is evaluated while it trains
    (`evals_per_epoch`, `eval_steps`) and at the end."""
    output_dir = Path(recipe.output_dir)
    fp16 = use_fp16(recipe.bf16, recipe.fp16)
    args = TrainingArguments(
        output_dir=str(output_dir / "checkpoints"),
        per_device_train_batch_size=recipe.micro_batch_size,
        gradient_accumulation_steps=recipe.gradient_accumulation_steps,
        # With `rows`, one of Trainer's epochs: the batch sampler lays out the recipe's.
        num_train_epochs=1 if rows is not None else recipe.num_epochs / passes,
        max_steps=recipe.max_steps or -1,
        learning_rate=recipe.learning_rate,
        **_scheduler_arguments(recipe),
        # transformers reads a warmup below 1 as a fraction of the steps.
        warmup_steps=recipe.warmup_steps or recipe.warmup_ratio,
        weight_decay=recipe.weight_decay,
        optim=recipe.optimizer,
        adam_beta1=recipe.adam_beta1,
        adam_beta2=recipe.adam_beta2,
        adam_epsilon=recipe.adam_epsilon,
        max_grad_norm=recipe.max_grad_norm,
        neftune_noise_alpha=recipe.neftune_noise_alpha,
        seed=recipe.seed,
        data_seed=recipe.seed,
        bf16=bf16,
        fp16=fp16,
        tf32=use_tf32(recipe.tf32),
        use_cpu=not torch.cuda.is_available(),
        **_checkpointing_arguments(recipe),
        deepspeed=recipe.deepspeed,
        **fsdp_arguments(recipe, PartialState().num_processes),
        **_checkpoint_arguments(recipe, rows, len(dataset)),
        **_evaluation_arguments(recipe, eval_dataset, rows, len(dataset)),
        report_to=[],
        logging_steps=recipe.logging_steps,
        include_num_input_tokens_seen="non_padding",
        # Every trainable weight takes part in every forward pass (LoRA on the layers it targets, or the whole
        # model); Trainer would otherwise have DDP look for unused ones after each backward, for a PEFT model.
        ddp_find_unused_parameters=False,
        # The dataset holds only what the loss reads (a `distill` column among them), no text to drop.
        remove_unused_columns=False,
        dataloader_pin_memory=torch.cuda.is_available(),
        **_sampling_arguments(recipe.group_by_length),
        disable_tqdm=quiet,
    )
    _keep_the_recipes_precision(args, bf16, fp16)
    # Only the main process writes TensorBoard events (Trainer's callback skips the others).
    writer = SummaryWriter(log_dir=str(new_log_dir(output_dir / "logs"))) if args.process_index == 0 else None
    # Before the callbacks that show the loss: where it stops being a number, they show nan.
    non_finite = StopOnNonFiniteLoss(NonFiniteLosses(), scaled=fp16)
    trainer = LabelledLogitsTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        eval_dataset=eval_dataset,
        data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100),
        callbacks=[non_finite, TensorBoardCallback(tb_writer=writer)],
        optimizers=(_loraplus_optimizer(recipe, model), None),
    )
    trainer.non_finite_losses = non_finite.losses
    trainer.labelled_logits = recipe.backend != "unsloth"
    sharding = "fsdp" if recipe.uses_fsdp else "deepspeed" if recipe.deepspeed else None
    if sharding and not (trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled):
        # accelerate shards on GPUs and other accelerators only; elsewhere it falls back without a word.
        if args.world_size == 1:
            log.warning("%s: not applied (one process has nothing to shard; run it under accelerate launch)", sharding)
        else:
            log.warning(
                "%s: not applied (accelerate shards on GPUs only): every process holds the whole model, as under DDP",
                sharding,
            )
    if recipe.anchor_distillation and args.world_size > 1:
        # The distillation lives in the labelled-logits path, which calls the decoder past DDP's or FSDP's
        # wrapper and so runs on one process only.
        log.info("anchor_distillation: %d processes, so anchors are replayed as plain answers", args.world_size)
    # What the base model's computations depend on: the key of both the anchor states' and the directions' caches.
    base_key = (
        base_model_key(base_path, recipe, bf16, args.device.type, computes_linears_from_bf16(model), fp16)
        if base_path
        else None
    )
    states_file = None
    # The loss distils anchors (and keeps their teacher states) where some row distils (the column is there
    # only then) and its own path runs.
    distils = "distill" in (dataset.column_names or []) and args.world_size == 1 and trainer.labelled_logits
    if distils:
        states_file = teacher_states_path(base_key)
        trainer.teacher_cache = load_teacher_states(states_file, args.device)
    # The shared-prefix pass saves FLOPs, which bound a CPU; a GPU at these batch sizes waits on kernel
    # launches instead, and its second decoder call made training 1.8x slower there (BENCHMARKS.md, "On a GPU").
    trainer.share_prefix = args.device.type == "cpu"
    trainer.max_tokens_per_pass = tokens_per_pass(recipe, args.device.type)
    if rows is not None:
        # Each rank would see only its own rows' results and plan other batches than the rest; Unsloth's
        # fused loss does not give them: there every example is trained every epoch. (Under several processes
        # accelerate deals the batches out in turn.)
        adaptive = args.world_size == 1 and trainer.labelled_logits
        learning = Learning(len(rows.phrasings), recipe.learnt_after if adaptive else 0, rows.optional)
        trainer.epoch_batches = EpochBatches(
            rows, learning, recipe.num_epochs, recipe.micro_batch_size, recipe.seed, recipe.group_by_length
        )
        trainer.learning = learning if learning.learnt_after else None
        if args.save_strategy != "no":
            trainer.add_callback(KeepScheduleInCheckpoints(trainer.epoch_batches))
    # Only `train` runs keep checkpoints (sleep trains each version afresh, and its rows have no schedule).
    checkpoint = checkpoint_to_resume(recipe, Path(args.output_dir)) if rows is not None else None
    # What the checkpoint's run trained is not this run's: its tokens a second are this process's own.
    tokens_before = resume_schedule(trainer.epoch_batches, checkpoint) if checkpoint is not None else 0
    # Trainer prints every log dict (as text beside its progress bar, or alone without one); a person
    # wants the bar with the loss on it, and --quiet wants nothing.
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if not quiet:
        trainer.add_callback(LossOnProgressBar(len(rows.phrasings) if trainer.learning is not None else None))
    if args.device.type == "cpu":
        trainer.add_callback(ReturnFreedMemory())
    watchdog = None
    if recipe.loss_watchdog_threshold is not None:
        watchdog = LossWatchdog(recipe.loss_watchdog_threshold, recipe.loss_watchdog_patience)
        trainer.add_callback(watchdog)
    stopper = None
    if recipe.early_stopping_patience is not None and eval_dataset is not None:
        sharded = trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled
        if sharded:
            log.warning("early_stopping_patience: under %s the run stops, with its last weights", sharding)
        stopper = StopWhenHeldOutLossStalls(recipe.early_stopping_patience, model, keeps_weights=not sharded)
        trainer.add_callback(stopper)
        if checkpoint is not None:
            stopper.go_on_from(checkpoint)
    energy = null_space_energy(recipe.lora_null_space, model) if recipe.adapter != "full" else 0.0
    if energy:
        # Said only where the recipe asked for it by value: auto means "where it applies".
        say = log.info if recipe.lora_null_space != "auto" else log.debug
        if recipe.uses_fsdp or recipe.deepspeed:
            # Sharded parameters: no process holds a whole A matrix to project.
            say("lora_null_space: not applied under FSDP or DeepSpeed")
        elif rows is None:
            # Sleep builds its dataset without the epoch schedule's rows, so it has no anchor rows to read.
            say("lora_null_space: applies to `sleeptrain train` only, not to this run")
        elif recipe.lora_model_dir is not None:
            # Projecting would change what the adapter has learnt: its A matrices were trained without them.
            say("lora_null_space: not applied to an adapter continued from lora_model_dir")
        elif not rows.anchors:
            say("lora_null_space: no anchors in this run (anchor_ratio: 0), so no general inputs to keep out of")
        else:
            # Under the training's autocast: a bf16 run's frozen weights are bf16 and its norms fp32, and only
            # the autocast reconciles the two.
            with trainer.accelerator.autocast():
                callback = _null_space_callback(
                    energy,
                    model,
                    dataset,
                    rows,
                    trainer.data_collator,
                    args.device,
                    base_key,
                    progress=not quiet and args.local_process_index == 0,
                )
            trainer.add_callback(callback)
    started = time.perf_counter()
    try:
        result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint is not None else None)
    finally:
        if writer is not None:
            writer.close()
        # Trainer makes its output folder although nothing is checkpointed (save_strategy "no"): an empty
        # folder beside the adapter would only raise the question what belongs in it. Also when interrupted.
        with contextlib.suppress(OSError):
            Path(args.output_dir).rmdir()
    runtime = time.perf_counter() - started
    if non_finite.tripped_at is not None:
        raise _non_finite_loss_error(non_finite.tripped_at, fp16, recipe)
    if watchdog is not None and watchdog.tripped_at is not None:
        step, loss = watchdog.tripped_at
        raise SleeptrainError(
            f"loss_watchdog_threshold: the loss was above {watchdog.threshold:g} at {watchdog.patience} logged steps "
            f"in a row (step {step}: {loss:.3f}); training stopped and no adapter was saved (a lower learning_rate "
            "may help)"
        )
    eval_loss = None
    if eval_dataset is not None:
        # The evaluation at the last step (once more, unless the last one fell on it): what metrics.json keeps.
        last = [e for e in trainer.state.log_history if "eval_loss" in e]
        at_end = last and last[-1].get("step") == trainer.state.global_step
        eval_loss = round(float(last[-1]["eval_loss"] if at_end else trainer.evaluate()["eval_loss"]), 6)
    if stopper is not None:
        eval_loss = _keep_the_best_evaluation(stopper, trainer.state.global_step, eval_loss)
    # Trainer.save_model gathers FSDP/DeepSpeed shards and writes on the main process only; for a PEFT
    # model it writes just the adapter, whose config names the base model's folder or hub id.
    trainer.save_model(str(save_to))
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(save_to))
        save_teacher_states(states_file, trainer.teacher_cache or {})
    learning = trainer.learning
    if rows is None:
        epochs = round(float(trainer.state.epoch or 0.0) * passes, 3)
    else:
        # Batches taken: a step takes gradient_accumulation_steps of them on each process (dealt out in turn).
        taken = trainer.state.global_step * args.gradient_accumulation_steps * args.world_size
        epochs = trainer.epoch_batches.epochs_done(taken)
        if learning is not None and learning.all_learnt() and epochs < recipe.num_epochs:
            log.info("Every example learnt after %g of at most %g epochs", epochs, recipe.num_epochs)
        elif epochs > recipe.num_epochs:
            extra = epochs - recipe.num_epochs
            noun = "epoch" if extra == 1 else "epochs"
            log.info("%g more %s for the examples not learnt after %g", extra, noun, recipe.num_epochs)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    tokens = int(trainer.state.num_input_tokens_seen) - tokens_before
    return RunMetrics(
        train_tokens=tokens,
        train_runtime_s=round(runtime, 2),
        tokens_per_second=round(tokens / runtime, 1) if runtime > 0 else 0.0,
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        final_loss=float(losses[-1]) if losses else float(result.training_loss),
        peak_gpu_mb=round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else None,
        steps=int(trainer.state.global_step),
        epochs=epochs,
        examples_learnt=learning.learnt_count() if learning is not None else None,
        examples=len(rows.phrasings) if rows is not None else None,
        eval_loss=eval_loss,
    )
