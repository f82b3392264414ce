"""sleeptrain: turn what a language model is told into what it knows.

The public API is the workflow functions (one per CLI verb) and the recipe loader; everything else lives
in one package per concept (models, data, training, evaluation, ...).
"""

from sleeptrain.config import Recipe, load_recipe

__version__ = "0.1.0"
__all__ = ["Recipe", "load_recipe", "__version__"]
