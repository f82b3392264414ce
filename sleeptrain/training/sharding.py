"""FSDP as a recipe asks for it (Axolotl's `fsdp`, `fsdp_config`, `fsdp_version`), in the form transformers'
TrainingArguments reads: its options and its `fsdp_config` mapping. transformers then builds accelerate's FSDP
plugin from them; accelerate applies it where it shards, on GPUs. Imports config only.

Written here because Axolotl's names differ from transformers' in two places: `offload_params` is
transformers' `cpu_offload`, and an FSDP1 `sharding_strategy` is one of transformers' FSDP options.
"""

from __future__ import annotations

from typing import Any

from sleeptrain.config import Recipe


def fsdp_arguments(recipe: Recipe, processes: int) -> dict[str, Any]:
    """TrainingArguments' `fsdp` and `fsdp_config` for the recipe ({"fsdp": ""}: no FSDP). One process has
    nothing to shard, and Trainer refuses FSDP outside distributed training: there it is left off (the run says
    so), so that a recipe written for a node also runs as `sleeptrain train` on one machine."""
    if not recipe.uses_fsdp or processes == 1:
        return {"fsdp": ""}
    settings = recipe.fsdp_config.model_dump(exclude_none=True) if recipe.fsdp_config is not None else {}
    options = (recipe.fsdp or "").split()
    strategy = settings.pop("sharding_strategy", None)
    if strategy is not None:
        # transformers reads a strategy among the options, as FSDP2's reshard_after_forward or FSDP1's strategy.
        options.append(strategy.lower())
    if settings.pop("offload_params", False):
        settings["cpu_offload"] = True
    version = settings.pop("version", None) or recipe.fsdp_version
    if version is not None:
        settings["version"] = version
    return {"fsdp": " ".join(dict.fromkeys(options)) or True, "fsdp_config": settings}
