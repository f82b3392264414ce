"""What a recipe's backend needs before a run starts. `backend: unsloth` needs a CUDA GPU, and Unsloth
imported ahead of transformers, peft and trl: it patches them as it is imported, and warns that its
optimisations may not all apply otherwise. The default backend needs nothing.

The CLI calls this right after reading the recipe, before anything else is imported, which is why it sits
at the top of the package (as config does) and not in `workflows`, whose package imports transformers.
May import: sleeptrain.config, sleeptrain.errors, and torch inside `check_backend` for an Unsloth recipe only
(not sleeptrain.models, whose package imports torch: every command would pay for it before reading its input).
"""

from __future__ import annotations

from sleeptrain.config import Recipe
from sleeptrain.errors import SleeptrainError


def check_backend(recipe: Recipe) -> None:
    """Raise a one-line SleeptrainError if the recipe's backend cannot run here."""
    if recipe.backend != "unsloth":
        return
    import importlib.util

    import torch

    if not torch.cuda.is_available():
        raise SleeptrainError(
            "backend: unsloth needs a CUDA GPU and none is available here; use backend: transformers (the "
            "default), which runs LoRA and QLoRA on any device"
        )
    if importlib.util.find_spec("unsloth") is None:
        raise SleeptrainError("backend: unsloth needs the unsloth package: pip install 'sleeptrain[unsloth]'")


def prepare_backend(recipe: Recipe) -> None:
    """Check that the recipe's backend can run here (a one-line SleeptrainError if not) and import it."""
    check_backend(recipe)
    if recipe.backend == "unsloth":
        import unsloth  # noqa: F401  (imported for its patches)
