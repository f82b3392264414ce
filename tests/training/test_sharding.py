"""FSDP as Axolotl's recipes ask for it (`fsdp`, `fsdp_config`, `fsdp_version`), checked where it lands:
the FSDP plugin arguments transformers' TrainingArguments builds from what sleeptrain hands it (accelerate
applies them where it shards, on GPUs; on these CPUs a run says it is not applied: tests/workflows)."""

from __future__ import annotations

import pytest
from transformers import TrainingArguments

from sleeptrain.config import load_recipe
from sleeptrain.training.sharding import fsdp_arguments
from tests.test_config import MINIMAL, error_of

# Axolotl's newer form (its llama-3 and qwen3 FSDP examples): the version at the top, keys without a prefix.
FSDP2 = """\
fsdp_version: 2
fsdp_config:
  offload_params: true
  state_dict_type: SHARDED_STATE_DICT
  auto_wrap_policy: TRANSFORMER_BASED_WRAP
  transformer_layer_cls_to_wrap: LlamaDecoderLayer
  reshard_after_forward: true
  cpu_ram_efficient_loading: true
  activation_checkpointing: true
"""

# Its older form (its qwen2 qlora-fsdp example): the options listed, keys with their prefix, FSDP1 settings.
FSDP1 = """\
fsdp:
  - full_shard
  - auto_wrap
fsdp_config:
  fsdp_version: 1
  fsdp_limit_all_gathers: true
  fsdp_sync_module_states: true
  fsdp_offload_params: true
  fsdp_use_orig_params: false
  fsdp_cpu_ram_efficient_loading: true
  fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP
  fsdp_transformer_layer_cls_to_wrap: Qwen2DecoderLayer
  fsdp_state_dict_type: FULL_STATE_DICT
  fsdp_sharding_strategy: FULL_SHARD
"""


def plugin_arguments(recipe, tmp_path) -> dict | None:
    # As under `accelerate launch` on a node of several processes.
    arguments = fsdp_arguments(recipe, processes=8)
    return TrainingArguments(output_dir=str(tmp_path / "args"), use_cpu=True, **arguments).fsdp_plugin_args


def test_axolotls_fsdp2_settings_reach_the_fsdp_plugin(write_recipe, tmp_path):
    recipe = load_recipe(write_recipe(MINIMAL + FSDP2))

    assert recipe.uses_fsdp
    assert plugin_arguments(recipe, tmp_path) == {
        "fsdp_version": 2,
        "cpu_offload": True,
        "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
        "transformer_cls_names_to_wrap": "LlamaDecoderLayer",
        "cpu_ram_efficient_loading": True,
        "state_dict_type": "SHARDED_STATE_DICT",
        "activation_checkpointing": True,
        "reshard_after_forward": True,
    }


def test_axolotls_older_fsdp1_recipe_with_prefixed_keys_reaches_the_fsdp_plugin(write_recipe, tmp_path):
    recipe = load_recipe(write_recipe(MINIMAL + FSDP1))

    assert recipe.fsdp == "full_shard auto_wrap" and recipe.fsdp_config.offload_params is True
    plugin = plugin_arguments(recipe, tmp_path)
    assert plugin["fsdp_version"] == 1 and plugin["reshard_after_forward"] == "full_shard"
    assert plugin["cpu_offload"] and plugin["sync_module_states"] and plugin["limit_all_gathers"]
    assert plugin["use_orig_params"] is False and plugin["transformer_cls_names_to_wrap"] == "Qwen2DecoderLayer"


def test_a_recipe_without_fsdp_builds_no_plugin(write_recipe, tmp_path):
    recipe = load_recipe(write_recipe(MINIMAL))
    assert not recipe.uses_fsdp and plugin_arguments(recipe, tmp_path) is None


@pytest.mark.parametrize(
    ("lines", "says"),
    [
        ("fsdp_version: 2\n", ":4: fsdp_version needs fsdp_config (or fsdp) to shard with"),
        (
            "fsdp_config:\n  sharding_strategy: HYBRID_SHARD\n",
            ":4: fsdp_config: sharding_strategy HYBRID_SHARD is FSDP1's: set fsdp_version: 1",
        ),
        (
            "fsdp_config:\n  fsdp_ofload_params: true\n",
            "unknown key 'fsdp_config.ofload_params' (did you mean 'offload_params'?)",
        ),
        ("fsdp_version: 1\nfsdp_config:\n  version: 2\n", "fsdp_version and fsdp_config's version differ"),
    ],
)
def test_fsdp_settings_that_cannot_work_are_an_error_that_names_them(write_recipe, lines, says):
    assert says in error_of(write_recipe(MINIMAL + lines))
