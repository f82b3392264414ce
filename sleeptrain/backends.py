"""What a recipe's backend needs before a run starts. `backend: unsloth` needs a CUDA GPU, and Unsloth
imported ahead of transformers, peft and trl: it patches them as it is imported, and warns that its
optimisations may not all apply otherwise. The default backend needs nothing.

The CLI calls this right after reading the recipe, before anything else is imported, which is why it sits
at the top of the package (as config does) and not in `workflows`, whose package imports transformers.
May import: sleeptrain.config, sleeptrain.models.unsloth_backend (neither imports transformers).
"""

from __future__ import annotations

from sleeptrain.config import Recipe
from sleeptrain.models.unsloth_backend import check_backend


def prepare_backend(recipe: Recipe) -> None:
    """Check that the recipe's backend can run here (a one-line SleeptrainError if not) and import it."""
    check_backend(recipe)
    if recipe.backend == "unsloth":
        import unsloth  # noqa: F401  (imported for its patches)
