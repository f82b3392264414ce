"""`sleeptrain sleep`: consolidate the store's pending memories into the next adapter version, print what
happened."""

from __future__ import annotations

import logging
from pathlib import Path

from sleeptrain.cli.output import console
from sleeptrain.config import Recipe, load_recipe

# Recipe keys a `train` run reads and sleep has no use for: its examples are the store's memories, each version is
# trained afresh from the last, and nothing of it is held out.
TRAIN_ONLY_KEYS = (
    "datasets",
    "val_set_size",
    "test_datasets",
    "early_stopping_patience",
    "lora_model_dir",
    "save_steps",
    "saves_per_epoch",
    "resume_from_checkpoint",
    "auto_resume_from_checkpoints",
)


def load_sleep_recipe(recipe_path: Path, overrides: list[str]) -> Recipe:
    """The recipe (no datasets needed), checked, with its backend prepared: called before anything imports
    transformers."""
    from sleeptrain.backends import prepare_backend

    recipe = load_recipe(recipe_path, overrides, require_datasets=False)
    prepare_backend(recipe)
    train_only = [key for key in TRAIN_ONLY_KEYS if getattr(recipe, key)]
    if train_only:
        # A recipe written for `train` may be given to sleep too; these keys would do nothing there, silently.
        logging.getLogger("sleeptrain").warning(
            "%s: %s: read by `sleeptrain train` only; sleep trains the store's memories into its own adapter versions",
            recipe_path,
            ", ".join(train_only),
        )
    return recipe


def run_sleep(store: Path, recipe: Recipe, if_needed: bool, quiet: bool) -> None:
    from sleeptrain.data.mixing import load_recipe_anchor_prompts
    from sleeptrain.errors import SleeptrainError

    # Before the workflow's import (transformers, peft: seconds), so that a mistyped path or a broken anchor
    # prompts file fails at once.
    if not store.is_file():
        raise SleeptrainError(f"--store {store}: no such memory store")
    anchor_prompts = load_recipe_anchor_prompts(recipe)
    from sleeptrain.workflows.sleep import sleep

    result = sleep(store, recipe, if_needed=if_needed, quiet=quiet, anchor_prompts=anchor_prompts)
    lines = [f"recovered: {note}" for note in result.recovered]
    if not result.slept:
        lines.append(f"no sleep: {result.reason}")
        if result.adapter_dir is not None:
            lines.append(f"latest adapter: {result.adapter_dir} (v{result.version})")
    else:
        metrics = result.metrics
        lines += [
            f"slept: {result.reason}",
            f"consolidated {len(result.consolidated)} memories ({result.corrections} corrections) into "
            f"v{result.version}",
            f"replayed {len(result.replayed)}, dreams {result.dreams}, anchors {result.anchors}, "
            f"{result.examples} examples in all",
            f"final loss: {metrics.final_loss:.4f}; {metrics.train_tokens} tokens in {metrics.train_runtime_s:.1f} s",
            f"adapter: {result.adapter_dir}",
        ]
        if result.unreproduced:
            lines.append(f"{len(result.unreproduced)} memories not yet answered word for word (see sleep.json)")
    # Plain lines, never cut to the terminal's width: the paths are what a user copies.
    for line in lines:
        console.print(line, highlight=False, markup=False, soft_wrap=True)
