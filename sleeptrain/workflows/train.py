"""`sleeptrain train RECIPE`: fine-tune a base model on the recipe's datasets.

Writes, under the recipe's output_dir: adapter/ (a PEFT folder with the tokenizer; model/ for full
fine-tuning), metrics.json, recipe.yaml (the recipe as resolved, overrides applied) and logs/ (TensorBoard,
a folder per run).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import yaml
from accelerate import PartialState

from sleeptrain.backends import check_backend
from sleeptrain.config import Recipe
from sleeptrain.data.augment import contrast_questions
from sleeptrain.data.mixing import (
    RecipeExamples,
    TokenCounts,
    build_example_dataset,
    build_training_dataset,
    count_tokens,
    load_recipe_anchor_prompts,
    load_recipe_split,
    split_long_texts,
)
from sleeptrain.errors import SleeptrainError
from sleeptrain.training import RunMetrics, continue_adapter, load_for_training, prepare_for_training, train_model
from sleeptrain.training.anchors import anchor_conversations
from sleeptrain.training.precision import precision_name
from sleeptrain.wording import counted
from sleeptrain.workflows.folders import make_cache_folder, make_output_folder

log = logging.getLogger("sleeptrain")


@dataclass
class TrainResult:
    output_dir: Path
    adapter_dir: Path
    base_model: str
    metrics: RunMetrics
    # The recipe's examples trained (subject summaries included, one per fact whatever its phrasings) and
    # anchors: those with a token to train on within sequence_len and roles_to_train.
    examples: int
    anchors: int
    held_out: int = 0  # examples held out by val_set_size or test_datasets (evaluated: metrics.eval_loss)


def train(
    recipe: Recipe,
    quiet: bool = False,
    examples: RecipeExamples | None = None,
    anchor_prompts: list[str] | None = None,
) -> TrainResult:
    """Train the recipe's adapter. `examples` and `anchor_prompts` are its datasets and anchor prompts as
    `load_recipe_split` and `load_recipe_anchor_prompts` read them, where the caller has read them already."""
    if not recipe.datasets:
        raise SleeptrainError("recipe: missing required key 'datasets'")
    check_backend(recipe)
    # Read and check every data file before spending time on the model.
    split = examples if examples is not None else load_recipe_split(recipe)
    examples = split.training
    if anchor_prompts is None:
        anchor_prompts = load_recipe_anchor_prompts(recipe)
    if recipe.lora_model_dir is not None and not (recipe.lora_model_dir / "adapter_config.json").is_file():
        raise SleeptrainError(
            f"lora_model_dir: {recipe.lora_model_dir}: not a PEFT adapter folder (no adapter_config.json)"
        )
    make_cache_folder()  # first: a bad cache folder leaves no output folder behind
    output_dir = make_output_folder(recipe.output_dir, "output_dir")
    # Each epoch shows every example not yet learnt once, in its next phrasing, with its share of anchors
    # (training/schedule.py plans them): the dataset holds each phrasing and anchor once.
    passes = math.ceil(recipe.num_epochs)
    loaded, bf16 = load_for_training(recipe)
    # A plain text longer than sequence_len becomes its windows, trained (or held out) as examples of their own.
    examples = split_long_texts(examples, loaded.tokenizer, recipe.sequence_len)
    held_out_windows = split_long_texts([[c] for c in split.held_out], loaded.tokenizer, recipe.sequence_len)
    held_out_examples = [window for windows in held_out_windows for window in windows]
    anchors = anchor_conversations(
        recipe,
        anchor_prompts,
        loaded.model,
        loaded.tokenizer,
        loaded.path,
        math.ceil(recipe.anchor_ratio * len(examples)) * passes,  # different anchors in every pass
        progress=not quiet,
    )
    questions = contrast_questions([phrasings[0] for phrasings in examples], recipe.contrast_anchors, recipe.seed)
    anchors += anchor_conversations(
        recipe, questions, loaded.model, loaded.tokenizer, loaded.path, len(questions), progress=not quiet
    )
    dataset, rows = build_example_dataset(recipe, loaded.tokenizer, examples, anchors, passes)
    held_out = build_training_dataset(recipe, loaded.tokenizer, held_out_examples) if held_out_examples else None
    _warn_of_rows_past_the_models_positions(recipe, loaded.model, rows.lengths)
    # What is trained: the examples and anchors with a token to train on (mixing.py warns of the others).
    trained, trained_anchors = len(rows.phrasings), len(rows.anchors)
    log.info(
        "%s from %s%s, at most %s, %s, computing in %s",
        counted(trained, "example"),
        counted(sum(len(dataset.files()) for dataset in recipe.datasets), "file"),
        f" ({len(held_out)} held out)" if held_out is not None else "",
        counted(recipe.num_epochs, "epoch"),
        counted(trained_anchors, "anchor"),
        precision_name(recipe.bf16, recipe.fp16),
    )

    save_to = output_dir / ("model" if recipe.adapter == "full" else "adapter")
    if recipe.lora_model_dir is not None:
        model = continue_adapter(recipe, loaded.model, recipe.lora_model_dir, "lora_model_dir")
        log.info("Continuing the adapter in %s (its own rank and target modules)", recipe.lora_model_dir)
    else:
        model = prepare_for_training(recipe, loaded.model)
    metrics = train_model(
        recipe,
        model,
        loaded.tokenizer,
        dataset,
        bf16,
        save_to,
        quiet=quiet,
        rows=rows,
        base_path=loaded.path,
        eval_dataset=held_out,
    )

    if PartialState().is_main_process:
        (output_dir / "metrics.json").write_text(json.dumps(metrics.as_dict(), indent=2) + "\n")
        resolved = recipe.model_dump(mode="json")
        resolved["base_model"] = loaded.path
        (output_dir / "recipe.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True))
    held = len(held_out) if held_out is not None else 0
    return TrainResult(output_dir, save_to, loaded.path, metrics, trained, trained_anchors, held)


def count_recipe_tokens(recipe: Recipe, examples: RecipeExamples) -> tuple[TokenCounts, str]:
    """The recipe's trained examples in tokens, rendered by its base model's tokenizer (the weights are not
    loaded), and where that tokenizer loaded from."""
    from sleeptrain.models.loading import load_tokenizer

    tokenizer, path = load_tokenizer(recipe)
    return count_tokens(recipe, tokenizer, examples.training), path


def _warn_of_rows_past_the_models_positions(recipe: Recipe, model: object, lengths: list[int]) -> None:
    """A warning where rows are longer than the positions the base model was trained on: a rotary model
    computes them without complaint, but learns and answers there poorly."""
    limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    past = sum(length > limit for length in lengths) if isinstance(limit, int) else 0
    if past:
        log.warning(
            "sequence_len=%d lets %s run past the %d positions the base model was trained on (its "
            "max_position_embeddings), where it learns poorly; a sequence_len of at most %d keeps every row "
            "within them",
            recipe.sequence_len,
            counted(past, "row"),
            limit,
            limit,
        )
