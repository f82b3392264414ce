"""`sleeptrain train`: load the recipe, train, print where things went."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sleeptrain.cli.output import console, errors
from sleeptrain.config import Recipe, load_recipe
from sleeptrain.wording import counted

if TYPE_CHECKING:  # the data modules import `datasets`: loaded only by the commands that read data
    from sleeptrain.data.mixing import RecipeExamples


def load_train_recipe(recipe_path: Path, overrides: list[str]) -> Recipe:
    """The recipe, checked, with its backend prepared: called before anything imports transformers."""
    from sleeptrain.backends import prepare_backend

    recipe = load_recipe(recipe_path, overrides)
    prepare_backend(recipe)
    return recipe


def held_out_by(recipe: Recipe) -> str:
    """The recipe key the held-out examples come from."""
    return "test_datasets" if recipe.test_datasets else "val_set_size"


def run_check(recipe_path: Path, overrides: list[str], quiet: bool = False, tokens: bool = False) -> None:
    """Read the recipe and its data files as `train` would, without loading a model; print the recipe with
    every default filled in (YAML, on stdout) and, unless `quiet`, what it holds (on stderr). A recipe without
    datasets is checked as `sleep` reads it (its memories come from the store). `tokens`: render its examples
    with the base model's tokenizer too, and say what they come to."""
    import yaml

    from sleeptrain.data.mixing import load_recipe_anchor_prompts, load_recipe_split

    recipe = load_recipe(recipe_path, overrides, require_datasets=False)
    split = load_recipe_split(recipe) if recipe.datasets else None
    anchor_prompts = load_recipe_anchor_prompts(recipe)
    resolved = yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    console.print(resolved, end="", markup=False, highlight=False, soft_wrap=True)
    if quiet:
        return
    files = sum(len(dataset.files()) for dataset in recipe.datasets or [])
    held = f" ({len(split.held_out)} more held out by {held_out_by(recipe)})" if split and split.held_out else ""
    holds = (
        f"{counted(len(split.training), 'example')}{held} from {counted(files, 'data file')}"
        if split
        else "no datasets, as `sleeptrain sleep` reads it (`sleeptrain train` needs datasets)"
    )
    errors.print(
        f"{recipe_path}: a valid recipe; {holds}, {len(anchor_prompts)} anchor prompts",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    if tokens and split:
        _print_tokens(recipe, split)


def _print_tokens(recipe: Recipe, split: RecipeExamples) -> None:
    from sleeptrain.workflows.train import count_recipe_tokens

    counts, path = count_recipe_tokens(recipe, split)
    errors.print(
        f"tokens ({Path(path).name}'s tokenizer): {counted(counts.examples, 'example')} in "
        f"{counted(counts.phrasings, 'phrasing')}, {counts.tokens} tokens, {counts.trained} of them trained; "
        f"an epoch trains about {counts.per_epoch} tokens of examples (each in one phrasing) besides its anchors; "
        f"the longest phrasing: {counts.longest_origin}, {counts.longest} tokens (sequence_len {recipe.sequence_len})",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def run_train(recipe: Recipe, quiet: bool) -> None:
    from sleeptrain.data.mixing import load_recipe_anchor_prompts, load_recipe_split

    # The data read and checked before the training libraries load (torch, transformers, peft: about 10 s on
    # 2 cores), so that a broken line or a missing file is reported at once.
    examples = load_recipe_split(recipe)  # load_recipe has required at least one dataset
    anchor_prompts = load_recipe_anchor_prompts(recipe)
    from sleeptrain.workflows.folders import make_cache_folder

    make_cache_folder()  # a cache folder that cannot be made is an error before the libraries load too
    from accelerate import PartialState

    from sleeptrain.workflows import train

    result = train(recipe, quiet=quiet, examples=examples, anchor_prompts=anchor_prompts)
    if not PartialState().is_main_process:
        return  # under accelerate launch / torchrun, one summary is enough
    metrics = result.metrics
    # Plain lines, never cut to the terminal's width: the paths are what a user copies.
    lines = [
        f"trained {counted(result.examples, 'example')} for {counted(metrics.epochs, 'epoch')} "
        f"({counted(result.anchors, 'anchor')})",
        *(
            [
                f"learnt (written token for token at their last {recipe.learnt_after} sightings): "
                f"{metrics.examples_learnt} of {counted(metrics.examples or 0, 'example')}"
            ]
            if metrics.examples_learnt is not None
            else []
        ),
        *(
            [
                f"held out ({held_out_by(recipe)}): {counted(result.held_out, 'example')}, "
                f"eval loss {metrics.eval_loss:.4f}"
            ]
            if metrics.eval_loss is not None
            else []
        ),
        f"base model: {result.base_model}",
        f"final loss: {metrics.final_loss:.4f}",
        f"tokens: {metrics.train_tokens} in {metrics.train_runtime_s:.1f} s ({metrics.tokens_per_second:.0f} tokens/s)",
        f"peak memory: {metrics.peak_rss_mb:.0f} MB"
        + (f" (GPU: {metrics.peak_gpu_mb:.0f} MB)" if metrics.peak_gpu_mb is not None else ""),
        f"{'model' if recipe.adapter == 'full' else 'adapter'}: {result.adapter_dir}",
        f"metrics: {result.output_dir / 'metrics.json'}",
        f"logs: {result.output_dir / 'logs'} (tensorboard --logdir {result.output_dir / 'logs'})",
    ]
    for line in lines:
        console.print(line, highlight=False, markup=False, soft_wrap=True)
