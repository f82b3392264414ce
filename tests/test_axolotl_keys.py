"""A recipe written for Axolotl loads as it is: the keys sleeptrain has no use for are set aside (and named),
those whose value a run here would not honour are one error naming each, and Axolotl's spellings of what
sleeptrain does read as its own keys."""

from __future__ import annotations

import logging

import pytest

from sleeptrain.axolotl_keys import IGNORED_KEYS, UNSET_ONLY_KEYS, is_unset
from sleeptrain.config import Recipe, load_recipe
from tests.test_config import error_of

# Cut from the LoRA example of Axolotl's documentation, with sleeptrain's data format.
AXOLOTL_RECIPE = """\
base_model: ./tiny-llama
load_in_8bit: false
load_in_4bit: false
datasets:
  - path: facts.jsonl
    type: qa
dataset_prepared_path: last_run_prepared
val_set_size: 0
output_dir: ./outputs/lora-out
adapter: lora
lora_model_dir:
sequence_len: 2048
sample_packing: true
pad_to_sequence_len: true
lora_r: 16
lora_alpha: 32
lora_dropout: 0.05
lora_target_linear: true
wandb_project:
wandb_entity:
gradient_accumulation_steps: 4
micro_batch_size: 2
num_epochs: 4
optimizer: adamw_torch_fused
lr_scheduler: cosine
learning_rate: 0.0002
train_on_inputs: false
group_by_length: false
bf16: auto
fp16:
tf32: false
gradient_checkpointing: true
resume_from_checkpoint:
logging_steps: 1
flash_attention: true
warmup_steps: 10
evals_per_epoch: 4
saves_per_epoch: 1
weight_decay: 0.0
fsdp:
fsdp_config:
special_tokens:
"""


def test_an_axolotl_lora_recipe_loads_with_its_own_values(write_recipe):
    recipe = load_recipe(write_recipe(AXOLOTL_RECIPE))

    assert recipe.lora_r == 16 and recipe.lora_dropout == 0.05 and recipe.lora_target_linear
    assert recipe.warmup_steps == 10 and recipe.optimizer == "adamw_torch_fused"
    assert recipe.gradient_accumulation_steps == 4 and recipe.gradient_checkpointing
    assert recipe.val_set_size == 0 and recipe.evals_per_epoch == 4  # read, as Axolotl reads them
    assert not recipe.load_in_8bit and not recipe.load_in_4bit
    # What the run writes says only what sleeptrain used.
    assert recipe.saves_per_epoch == 1 and recipe.resume_from_checkpoint is None  # a checkpoint an epoch
    assert "sample_packing" not in recipe.model_dump()


def test_the_keys_set_aside_are_named_in_one_line_with_what_sleeptrain_does_instead(write_recipe, caplog):
    with caplog.at_level(logging.INFO, logger="sleeptrain"):
        load_recipe(write_recipe(AXOLOTL_RECIPE))

    (line,) = [record.getMessage() for record in caplog.records if "set aside" in record.getMessage()]
    assert "sample_packing, pad_to_sequence_len (a batch is padded only to its longest example" in line
    assert "flash_attention (PyTorch's scaled-dot-product attention" in line
    assert "dataset_prepared_path (examples are tokenised in memory at each run)" in line
    # The keys left empty are counted, not listed: they asked for nothing.
    assert "wandb_project" not in line and line.endswith("; 2 empty or at sleeptrain's own setting")


def test_a_recipe_without_axolotl_keys_logs_nothing_about_them(write_recipe, caplog):
    with caplog.at_level(logging.INFO, logger="sleeptrain"):
        load_recipe(write_recipe("datasets:\n  - path: facts.jsonl\noutput_dir: out\n"))
    assert "Axolotl" not in caplog.text


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("do_causal_lm_eval: true", "the held-out examples (val_set_size, test_datasets) are evaluated by their loss"),
        ("wandb_project: my-runs", "runs log to TensorBoard in output_dir/logs"),
        ("tokens:\n  - <|new|>", "the base model's tokenizer is used as it is: no token is added"),
        ("gptq: true", "GPTQ models are not trained here"),
        ("hub_model_id: me/my-adapter", "nothing is pushed; the adapter is a PEFT folder to upload as it is"),
        ("float16: true", "fp16: true computes in fp16 under autocast on a GPU"),
        ("plugins:\n  - axolotl.integrations.swanlab.SwanLabPlugin", "sleeptrain runs no Axolotl plugin"),
    ],
)
def test_an_axolotl_key_given_a_value_sleeptrain_would_not_honour_is_an_error(write_recipe, line, says):
    key = line.split(":")[0]
    path = write_recipe(f"datasets:\n  - path: facts.jsonl\noutput_dir: out\n{line}\n")

    message = error_of(path)

    assert message.startswith(f"{path}:4: '{key}' is an Axolotl key sleeptrain does not use: ")
    assert says in message and message.endswith("leave it empty or remove it")


def test_the_plugins_and_kernels_that_only_make_a_run_faster_are_set_aside(write_recipe, caplog):
    # As in Axolotl's Qwen3 and Llama 3 examples: Cut Cross Entropy, Liger and its switches, LoRA kernels.
    speed_only = (
        "plugins:\n"
        "  - axolotl.integrations.cut_cross_entropy.CutCrossEntropyPlugin\n"
        "  - axolotl.integrations.liger.LigerPlugin\n"
        "liger_rms_norm: true\nliger_glu_activation: true\nlora_mlp_kernel: true\nlora_qkv_kernel: true\n"
        "fused_attn_kernel: true\nresize_token_embeddings_to_32x: true\n"
    )
    with caplog.at_level(logging.INFO, logger="sleeptrain"):
        recipe = load_recipe(write_recipe(f"datasets:\n  - path: facts.jsonl\noutput_dir: out\n{speed_only}"))

    (line,) = [record.getMessage() for record in caplog.records if "set aside" in record.getMessage()]
    assert "plugins, liger_rms_norm, liger_glu_activation, lora_mlp_kernel, lora_qkv_kernel (layers run as" in line
    assert "fused_attn_kernel (PyTorch's scaled-dot-product attention" in line
    assert "resize_token_embeddings_to_32x (the embeddings keep the model's size" in line
    assert "plugins" not in recipe.model_dump()


def test_every_key_that_cannot_be_read_is_named_in_one_error_in_file_order(write_recipe):
    path = write_recipe(
        "datasets:\n  - path: facts.jsonl\noutput_dir: out\n"
        "wandb_project: runs\n"  # line 4
        "lora_rank: 8\n"  # line 5, unknown
        "float16: true\n"  # line 6
        "sample_packing: true\n"  # set aside: not a problem
    )

    message = error_of(path)

    assert message.startswith(f"{path}:4: 'wandb_project' is an Axolotl key sleeptrain does not use")
    assert message.endswith("[also: 'lora_rank' (line 5); 'float16' (line 6)]")
    assert "\n" not in message


def test_a_key_only_unknown_still_suggests_the_closest_one_first(write_recipe):
    path = write_recipe("datasets:\n  - path: facts.jsonl\noutput_dir: out\nlora_rank: 8\nwandb_project: x\n")
    assert error_of(path) == (
        f"{path}:4: unknown key 'lora_rank' (did you mean 'lora_r'?) [also: 'wandb_project' (line 5)]"
    )


def test_an_axolotl_key_given_on_the_command_line_is_named_as_given(write_recipe):
    path = write_recipe("datasets:\n  - path: facts.jsonl\noutput_dir: out\n")
    assert error_of(path, ["float16=true"]).startswith(
        "--set float16=true: 'float16' is an Axolotl key sleeptrain does not use"
    )
    assert load_recipe(path, ["sample_packing=true"]).group_by_length  # set aside, as in the file


def test_axolotl_keys_inside_a_dataset_entry(write_recipe):
    path = write_recipe(
        "datasets:\n  - path: chats.jsonl\n    type: chat_template\n    ds_type: json\n    split: train\n"
        "output_dir: out\n"
    )
    (dataset,) = load_recipe(path).datasets
    assert dataset.type == "chat"  # Axolotl's name for conversations rendered with the chat template

    spoilt = write_recipe("datasets:\n  - path: chats.jsonl\n    type: chat\n    shards: 4\noutput_dir: out\n")
    assert error_of(spoilt).startswith(f"{spoilt}:4: 'datasets.0.shards' is an Axolotl key sleeptrain does not use")


def test_axolotls_older_turn_keys_and_its_roles_mapping(write_recipe):
    # As Axolotl's own examples still write a ShareGPT dataset.
    path = write_recipe(
        "datasets:\n  - path: chats.jsonl\n    type: chat_template\n    field_messages: conversations\n"
        "    message_field_role: from\n    message_field_content: value\n"
        "    roles:\n      user: [human]\n      assistant: [gpt]\noutput_dir: out\n"
    )
    (dataset,) = load_recipe(path).datasets
    assert dataset.message_property_mappings.model_dump() == {"role": "from", "content": "value"}
    assert dataset.roles == {"user": ["human"], "assistant": ["gpt"]}

    both = write_recipe(
        "datasets:\n  - path: chats.jsonl\n    type: chat\n    message_field_role: from\n"
        "    message_property_mappings:\n      role: from\noutput_dir: out\n"
    )
    assert "give message_property_mappings or message_field_role/content, not both" in error_of(both)


def test_a_value_that_asks_for_what_sleeptrain_does_anyway_is_set_aside(write_recipe, caplog):
    path = write_recipe(
        "datasets:\n  - path: chats.jsonl\n    type: chat_template\n    train_on_eos: turn\n"
        "output_dir: out\nshuffle_merged_datasets: true\n"
    )
    with caplog.at_level(logging.INFO, logger="sleeptrain"):
        load_recipe(path)
    assert "2 keys empty or at sleeptrain's own setting" in caplog.text

    other = write_recipe("datasets:\n  - path: chats.jsonl\n    type: chat\n    train_on_eos: all\noutput_dir: out\n")
    assert "'datasets.0.train_on_eos' is an Axolotl key sleeptrain does not use: the end of each trained turn" in (
        error_of(other)
    )


@pytest.mark.parametrize("value", [None, False, 0, 0.0, "", [], {}, "disabled"])
def test_what_axolotl_reads_as_off(value):
    assert is_unset(value)


@pytest.mark.parametrize("value", [True, 1, 0.05, "runs", ["q_proj"], {"pad_token": "<pad>"}])
def test_what_axolotl_reads_as_set(value):
    assert not is_unset(value)


def test_no_key_is_both_set_aside_and_refused_nor_a_recipe_key():
    assert not set(IGNORED_KEYS) & set(UNSET_ONLY_KEYS)
    assert not (set(IGNORED_KEYS) | set(UNSET_ONLY_KEYS)) & set(Recipe.model_fields)


# ------------------------------------------------------------------------------ Axolotl's other spellings


def test_default_system_message_is_the_system_prompt(write_recipe):
    path = write_recipe("datasets:\n  - path: f.jsonl\noutput_dir: out\ndefault_system_message: Be brief.\n")
    assert load_recipe(path).system_prompt == "Be brief."

    both = write_recipe(
        "datasets:\n  - path: f.jsonl\noutput_dir: out\nsystem_prompt: Be kind.\ndefault_system_message: Be brief.\n"
    )
    assert error_of(both) == f"{both}:5: give system_prompt or default_system_message, not both"


def test_a_jinja_chat_template_in_chat_template_jinja(write_recipe):
    template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    path = write_recipe(
        f'datasets:\n  - path: f.jsonl\noutput_dir: out\nchat_template: jinja\nchat_template_jinja: "{template}"\n'
    )
    assert load_recipe(path).chat_template == template

    alone = write_recipe(f'datasets:\n  - path: f.jsonl\noutput_dir: out\nchat_template_jinja: "{template}"\n')
    assert load_recipe(alone).chat_template == template  # Axolotl reads it where chat_template is left out

    missing = write_recipe("datasets:\n  - path: f.jsonl\noutput_dir: out\nchat_template: jinja\n")
    assert error_of(missing) == f"{missing}:4: chat_template: jinja needs the template itself in chat_template_jinja"

    clash = write_recipe(
        f'datasets:\n  - path: f.jsonl\noutput_dir: out\nchat_template: chatml\nchat_template_jinja: "{template}"\n'
    )
    assert error_of(clash).startswith(f"{clash}:5: chat_template_jinja is read only with chat_template: jinja")


# ------------------------------------------------------------------------ Axolotl's keys sleeptrain reads


def test_an_optimizer_name_transformers_does_not_know_is_found_with_its_line(write_recipe):
    path = write_recipe("datasets:\n  - path: f.jsonl\noutput_dir: out\noptimizer: adamw_fancy\n")
    assert error_of(path) == (
        f"{path}:4: 'optimizer': not an optimizer transformers knows (did you mean 'adamw_torch'?) (got 'adamw_fancy')"
    )


def test_an_optimizer_whose_package_is_missing_is_found_with_its_line(write_recipe):
    # APOLLO's package installs from git only: no test environment has it.
    path = write_recipe("datasets:\n  - path: f.jsonl\noutput_dir: out\noptimizer: apollo_adamw\n")
    assert error_of(path).startswith(
        f"{path}:4: 'optimizer': needs a package that is not installed: You need to install `apollo_torch`"
    )


def test_warmup_in_steps_or_as_a_ratio_not_both(write_recipe):
    path = write_recipe("datasets:\n  - path: f.jsonl\noutput_dir: out\nwarmup_steps: 10\nwarmup_ratio: 0.1\n")
    assert "give warmup_steps or warmup_ratio, not both" in error_of(path)


def test_a_floor_for_the_learning_rate_is_a_cosine_schedules(write_recipe):
    path = write_recipe(
        "datasets:\n  - path: f.jsonl\noutput_dir: out\nlr_scheduler: linear\ncosine_min_lr_ratio: 0.1\n"
    )
    assert "cosine_min_lr_ratio needs lr_scheduler: cosine (not linear)" in error_of(path)


def test_dora_is_not_offered_on_unsloths_kernels(write_recipe):
    path = write_recipe("datasets:\n  - path: f.jsonl\noutput_dir: out\nbackend: unsloth\npeft_use_dora: true\n")
    assert "peft_use_dora needs backend: transformers" in error_of(path)
