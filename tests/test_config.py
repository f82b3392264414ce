"""The recipe: defaults, `--set` overrides, and one-line errors that name the file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from sleeptrain.config import DatasetConfig, Recipe, load_recipe
from sleeptrain.errors import SleeptrainError

MINIMAL = "datasets:\n  - path: facts.jsonl\noutput_dir: out\n"


def error_of(path, overrides=None) -> str:
    with pytest.raises(SleeptrainError) as caught:
        load_recipe(path, overrides)
    return str(caught.value)


# ------------------------------------------------------------------------------------------- defaults


def test_a_recipe_of_only_datasets_and_output_dir_is_complete(write_recipe):
    recipe = load_recipe(write_recipe(MINIMAL))

    assert recipe.output_dir == Path("out")
    assert [d.type for d in recipe.datasets] == ["qa"]
    assert recipe.base_model is None  # the embedded default model
    assert recipe.adapter == "lora" and recipe.load_in_4bit is False
    assert recipe.lora_r == 16 and recipe.lora_alpha == 32
    assert recipe.lora_target_modules is None  # every linear layer of the family
    assert recipe.chat_template == "tokenizer_default"
    assert recipe.train_on_inputs is False
    assert recipe.bf16 == "auto"


def test_only_assistant_turns_are_trained_unless_train_on_inputs(write_recipe):
    recipe = load_recipe(write_recipe(MINIMAL))
    assert recipe.roles_to_train(recipe.datasets[0]) == ["assistant"]

    everything = load_recipe(write_recipe(MINIMAL + "train_on_inputs: true\n"))
    assert everything.roles_to_train(everything.datasets[0]) == ["system", "user", "assistant"]


def test_a_dataset_can_choose_its_own_trained_roles(write_recipe):
    recipe = load_recipe(
        write_recipe(
            "datasets:\n  - path: chats.jsonl\n    type: chat\n    roles_to_train: [user, assistant]\n"
            "output_dir: out\ntrain_on_inputs: false\n"
        )
    )
    assert recipe.roles_to_train(recipe.datasets[0]) == ["user", "assistant"]


def test_an_empty_recipe_file_is_called_empty(write_recipe):
    path = write_recipe("")
    assert error_of(path) == f"{path}: the recipe is empty (it needs at least datasets and output_dir)"


@pytest.mark.parametrize(
    "written",
    [
        "datasets: facts.jsonl",
        "datasets: [facts.jsonl]",
        "datasets:\n  path: facts.jsonl",
        "datasets:\n  - facts.jsonl",
    ],
)
def test_a_dataset_may_be_given_in_short(write_recipe, written):
    recipe = load_recipe(write_recipe(written + "\noutput_dir: out\n"), ["datasets.0.type=chat"])
    assert [(d.path.name, d.type) for d in recipe.datasets] == [("facts.jsonl", "chat")]


def test_a_key_inside_a_dataset_given_in_short_is_named_on_its_line(write_recipe):
    path = write_recipe("datasets:\n  path: facts.jsonl\n  typo: 3\noutput_dir: out\n")
    assert error_of(path) == f"{path}:3: unknown key 'datasets.0.typo' (did you mean 'type'?)"


@pytest.mark.parametrize(("value", "shown"), [("3", "3"), ("true", "True")])
def test_datasets_of_another_kind_is_one_error_with_its_line(write_recipe, value, shown):
    path = write_recipe(f"datasets: {value}\noutput_dir: out\n")
    assert error_of(path) == f"{path}:1: 'datasets': Input should be a valid list; or null (got {shown})"


def test_test_datasets_are_written_as_datasets_are_and_their_keys_named_on_their_lines(write_recipe):
    recipe = load_recipe(write_recipe("datasets: facts.jsonl\ntest_datasets: other_words.jsonl\noutput_dir: out\n"))
    assert [(d.path.name, d.type) for d in recipe.test_datasets] == [("other_words.jsonl", "qa")]

    path = write_recipe("datasets: facts.jsonl\ntest_datasets:\n  - path: a.jsonl\n    typo: chat\noutput_dir: out\n")
    assert error_of(path) == f"{path}:4: unknown key 'test_datasets.0.typo' (did you mean 'type'?)"


def test_an_axolotl_test_dataset_loads_with_its_bookkeeping_keys_set_aside(write_recipe):
    recipe = load_recipe(
        write_recipe(
            "datasets: facts.jsonl\ntest_datasets:\n  - path: eval.jsonl\n    ds_type: json\n    split: train\n"
            "    type: chat_template\noutput_dir: out\n"
        )
    )
    assert [(d.path.name, d.type) for d in recipe.test_datasets] == [("eval.jsonl", "chat")]


def test_a_datasets_ds_type_names_its_files_format_as_axolotl_does(write_recipe):
    recipe = load_recipe(write_recipe("datasets:\n  - path: facts.txt\n    ds_type: csv\noutput_dir: out\n"))
    assert recipe.datasets[0].ds_type == "csv"
    jsonl = load_recipe(write_recipe("datasets:\n  - path: facts.txt\n    ds_type: jsonl\noutput_dir: out\n"))
    assert jsonl.datasets[0].ds_type == "json"  # Axolotl's one name for both JSON forms

    path = write_recipe("datasets:\n  - path: facts.txt\n    ds_type: xml\noutput_dir: out\n")
    assert error_of(path).startswith(f"{path}:3: 'datasets.0.ds_type': Input should be 'json', 'csv', 'tsv',")


def test_data_files_are_one_or_a_list_and_a_split_is_read_whole(write_recipe, tmp_path):
    recipe = load_recipe(write_recipe("datasets:\n  - path: corpus\n    data_files: train.jsonl\noutput_dir: out\n"))
    assert recipe.datasets[0].files() == [Path("train.jsonl")]  # found nowhere: "no such data file" when read

    path = write_recipe("datasets:\n  - path: facts.jsonl\n    split: train[:10%]\noutput_dir: out\n")
    assert error_of(path) == (
        f"{path}:3: 'datasets.0.split': slices of a split are not read here; every row of a split is trained"
        " (got 'train[:10%]')"
    )


def test_a_pattern_names_the_files_it_matches_in_name_order(write_recipe, tmp_path):
    (tmp_path / "notes").mkdir()
    for name in ("b.jsonl", "a.jsonl", "c.csv"):
        (tmp_path / "notes" / name).write_text("")
    expected = [tmp_path / "notes" / "a.jsonl", tmp_path / "notes" / "b.jsonl"]

    as_path = load_recipe(write_recipe("datasets: notes/*.jsonl\noutput_dir: out\n"))
    as_data_files = load_recipe(
        write_recipe("datasets:\n  - path: notes\n    data_files: '*.jsonl'\noutput_dir: out\n")
    )

    assert as_path.datasets[0].files() == as_data_files.datasets[0].files() == expected
    nothing = load_recipe(write_recipe("datasets: notes/*.parquet\noutput_dir: out\n"))
    assert nothing.datasets[0].files() == [Path("notes/*.parquet")]  # reading it says no file matches


def test_held_out_examples_come_from_val_set_size_or_test_datasets_not_both(write_recipe):
    path = write_recipe("datasets: facts.jsonl\ntest_datasets: eval.jsonl\nval_set_size: 0.1\noutput_dir: out\n")
    assert error_of(path) == f"{path}:3: give val_set_size or test_datasets, not both"


def test_early_stopping_needs_held_out_examples(write_recipe):
    path = write_recipe("datasets: facts.jsonl\noutput_dir: out\nearly_stopping_patience: 3\n")
    assert error_of(path) == (
        f"{path}:3: early_stopping_patience needs held-out examples to evaluate: val_set_size or test_datasets"
    )
    assert load_recipe(path, ["val_set_size=0.1"]).early_stopping_patience == 3


@pytest.mark.parametrize(
    ("keys", "says"),
    [
        ("save_steps: 10\nsaves_per_epoch: 2", "4: give save_steps or saves_per_epoch, not both"),
        (
            "auto_resume_from_checkpoints: true\nresume_from_checkpoint: run/checkpoints/checkpoint-4",
            "4: give resume_from_checkpoint or auto_resume_from_checkpoints, not both",
        ),
    ],
)
def test_checkpoint_keys_that_contradict_each_other_are_refused(write_recipe, keys, says):
    path = write_recipe(f"datasets: facts.jsonl\noutput_dir: out\n{keys}\n")
    assert error_of(path) == f"{path}:{says}"


def test_a_recipe_must_be_a_mapping(write_recipe):
    path = write_recipe("- lora_r\n- 8\n")
    message = error_of(path)
    assert str(path) in message and "mapping" in message


# ------------------------------------------------------------------------------------------- adapters


def test_qlora_implies_4bit_loading(write_recipe):
    recipe = load_recipe(write_recipe(MINIMAL + "adapter: qlora\n"))
    assert recipe.adapter == "qlora"
    assert recipe.load_in_4bit is True


def test_load_in_4bit_with_lora_means_qlora_as_in_axolotl(write_recipe):
    recipe = load_recipe(write_recipe(MINIMAL + "load_in_4bit: true\n"))
    assert recipe.adapter == "qlora"


def test_full_fine_tuning_of_a_4bit_model_is_refused(write_recipe):
    message = error_of(write_recipe(MINIMAL + "adapter: full\nload_in_4bit: true\n"))
    assert "load_in_4bit" in message and "qlora" in message


def test_gradient_checkpointing_kwargs_are_read_as_axolotl_writes_them_and_a_misspelt_one_is_named(write_recipe):
    lines = "gradient_checkpointing: true\ngradient_checkpointing_kwargs:\n  use_reentrant: false\n"
    assert load_recipe(write_recipe(MINIMAL + lines)).gradient_checkpointing_kwargs.use_reentrant is False

    message = error_of(write_recipe(MINIMAL + lines.replace("use_reentrant", "use_reentrnt")))
    assert ":6: unknown key 'gradient_checkpointing_kwargs.use_reentrnt' (did you mean 'use_reentrant'?)" in message


def test_activation_offloading_needs_gradient_checkpointing(write_recipe):
    message = error_of(write_recipe(MINIMAL + "activation_offloading: true\n"))
    assert ":4: activation_offloading needs gradient_checkpointing: true" in message
    lines = "gradient_checkpointing: true\nactivation_offloading: true\n"
    assert load_recipe(write_recipe(MINIMAL + lines)).activation_offloading


def test_load_in_8bit_is_lora_on_an_8bit_model_as_in_axolotl(write_recipe):
    recipe = load_recipe(write_recipe(MINIMAL + "load_in_8bit: true\n"))
    assert recipe.adapter == "lora" and recipe.load_in_8bit and not recipe.load_in_4bit


@pytest.mark.parametrize(
    ("lines", "says"),
    [
        ("adapter: full\nload_in_8bit: true\n", ":5: load_in_8bit needs adapter: lora"),
        ("adapter: qlora\nload_in_8bit: true\n", ":5: give load_in_8bit or load_in_4bit (adapter: qlora), not both"),
        ("load_in_8bit: true\nload_in_4bit: true\n", ":5: give load_in_8bit or load_in_4bit"),
        ("load_in_8bit: true\nbackend: unsloth\n", ":5: load_in_8bit needs backend: transformers"),
        ("load_in_8bit: true\nbf16_storage: true\n", ":5: bf16_storage stores full-precision weights in bf16"),
    ],
)
def test_load_in_8bit_with_what_it_cannot_go_with_is_an_error_at_the_later_line(write_recipe, lines, says):
    assert says in error_of(write_recipe(MINIMAL + lines))


def test_bf16_storage_is_for_lora_on_transformers(write_recipe):
    message = error_of(write_recipe(MINIMAL + "adapter: full\nbf16_storage: true\n"))
    assert "bf16_storage" in message and "lora" in message
    assert load_recipe(write_recipe(MINIMAL)).bf16_storage == "auto"


def test_anchor_distillation_needs_an_adapter_to_switch_off(write_recipe):
    message = error_of(write_recipe(MINIMAL + "adapter: full\nanchor_distillation: true\n"))
    assert "anchor_distillation" in message and "lora" in message


def test_anchors_are_distilled_wherever_an_adapter_can_be_switched_off(write_recipe):
    assert load_recipe(write_recipe(MINIMAL)).anchor_distillation is True
    assert load_recipe(write_recipe(MINIMAL + "adapter: qlora\n")).anchor_distillation is True
    assert load_recipe(write_recipe(MINIMAL + "adapter: full\n")).anchor_distillation is False
    assert load_recipe(write_recipe(MINIMAL + "backend: unsloth\n")).anchor_distillation is False
    assert load_recipe(write_recipe(MINIMAL), ["anchor_distillation=false"]).anchor_distillation is False


def test_one_target_module_may_be_written_without_a_list(write_recipe):
    recipe = load_recipe(write_recipe(MINIMAL + "lora_target_modules: q_proj\n"))
    assert recipe.lora_target_modules == ["q_proj"]


def test_target_modules_may_be_written_with_commas_as_on_the_command_line(write_recipe):
    recipe = load_recipe(write_recipe(MINIMAL), ["lora_target_modules=q_proj, v_proj"])
    assert recipe.lora_target_modules == ["q_proj", "v_proj"]


# -------------------------------------------------------------------------------------------- --set


def test_set_overrides_numbers_booleans_and_strings(write_recipe):
    recipe = load_recipe(
        write_recipe(MINIMAL),
        [
            "learning_rate=2e-4",
            "lora_r=8",
            "num_epochs=1.5",
            "gradient_checkpointing=true",
            "bf16=false",
            "system_prompt=You are terse.",
        ],
    )
    assert recipe.learning_rate == pytest.approx(2e-4)
    assert recipe.lora_r == 8
    assert recipe.num_epochs == 1.5
    assert recipe.gradient_checkpointing is True
    assert recipe.bf16 is False
    assert recipe.system_prompt == "You are terse."


def test_set_reaches_into_list_items_with_dotted_keys(write_recipe):
    recipe = load_recipe(write_recipe(MINIMAL), ["datasets.0.type=chat", "datasets.0.roles_to_train=[user]"])
    assert recipe.datasets[0].type == "chat"
    assert recipe.datasets[0].roles_to_train == ["user"]


def test_set_accepts_yaml_lists(write_recipe):
    recipe = load_recipe(write_recipe(MINIMAL), ["lora_target_modules=[q_proj,v_proj]"])
    assert recipe.lora_target_modules == ["q_proj", "v_proj"]


def test_set_with_an_empty_value_means_null(write_recipe):
    recipe = load_recipe(write_recipe(MINIMAL + "base_model: some/model\n"), ["base_model="])
    assert recipe.base_model is None


def test_set_wins_over_the_file(write_recipe):
    recipe = load_recipe(write_recipe(MINIMAL + "lora_r: 4\n"), ["lora_r=32"])
    assert recipe.lora_r == 32


def test_set_without_equals_sign_is_explained(write_recipe):
    message = error_of(write_recipe(MINIMAL), ["learning_rate"])
    assert message.startswith("--set 'learning_rate'")
    assert "key=value" in message


@pytest.mark.parametrize("item", ["=3", "a..b=1"])
def test_set_with_an_empty_key_is_refused(write_recipe, item):
    assert error_of(write_recipe(MINIMAL), [item]).startswith(f"--set {item!r}")


def test_set_of_an_unknown_key_names_the_set_and_suggests_a_key(write_recipe):
    message = error_of(write_recipe(MINIMAL), ["lora_rr=3"])
    assert message.startswith("--set lora_rr=3")
    assert "unknown key 'lora_rr'" in message
    assert "did you mean 'lora_r'?" in message


def test_set_of_a_wrong_type_names_the_set_not_the_file(write_recipe):
    path = write_recipe(MINIMAL)
    message = error_of(path, ["lora_r=abc"])
    assert message.startswith("--set lora_r=abc")
    assert "'lora_r'" in message
    assert str(path) not in message


def test_a_key_of_several_forms_names_every_form_it_takes(write_recipe):
    # max_tokens_per_pass is a number of tokens, 'auto' or null; bf16 is true/false or 'auto'; anchor_distillation
    # is true/false or null.
    message = error_of(write_recipe(MINIMAL), ["max_tokens_per_pass=abc"])
    assert message.startswith("--set max_tokens_per_pass=abc: 'max_tokens_per_pass': Input should be a valid integer")
    assert message.endswith("; or 'auto', or null (got 'abc')")
    assert "or 'auto', or null" in error_of(write_recipe(MINIMAL), ["max_tokens_per_pass=0"])
    assert error_of(write_recipe(MINIMAL), ["bf16=maybe"]).endswith("; or 'auto' (got 'maybe')")
    # anchor_distillation: true, false, or null for the adapter's own choice.
    assert error_of(write_recipe(MINIMAL), ["anchor_distillation=maybe"]).endswith("; or null (got 'maybe')")
    assert " or " not in error_of(write_recipe(MINIMAL), ["lora_r=abc"])


def test_set_of_a_missing_list_item_is_refused(write_recipe):
    message = error_of(write_recipe(MINIMAL), ["datasets.3.type=qa"])
    assert "--set" in message and "no item 3 in datasets" in message


def test_set_below_a_plain_value_is_refused(write_recipe):
    assert "output_dir is not a section" in error_of(write_recipe(MINIMAL), ["output_dir.x=1"])


# ------------------------------------------------------------------------------------- file:line errors


def test_unknown_key_names_file_line_key_and_the_closest_valid_key(write_recipe):
    path = write_recipe(MINIMAL + "lora_rank: 8\n")
    assert error_of(path) == f"{path}:4: unknown key 'lora_rank' (did you mean 'lora_r'?)"


def test_unknown_key_without_a_close_match_lists_the_valid_keys(write_recipe):
    message = error_of(write_recipe(MINIMAL + "zzzzzz: 1\n"))
    assert "unknown key 'zzzzzz'" in message
    assert "valid keys:" in message and "learning_rate" in message


def test_unknown_key_inside_a_dataset_entry_names_its_line(write_recipe):
    path = write_recipe("datasets:\n  - path: facts.jsonl\n    typ: qa\noutput_dir: out\n")
    message = error_of(path)
    assert message.startswith(f"{path}:3:")
    assert "unknown key 'datasets.0.typ'" in message
    assert "did you mean 'type'?" in message


def test_yaml_syntax_error_names_the_line(write_recipe):
    path = write_recipe("datasets:\n  - path: facts.jsonl\n output_dir: out\n")
    message = error_of(path)
    assert message.startswith(f"{path}:3: YAML syntax error")


def test_a_key_given_twice_names_both_lines(write_recipe):
    # YAML itself keeps the last value silently: an edit to the first line would change nothing.
    path = write_recipe(MINIMAL + "learning_rate: 1e-3\nlora_r: 8\nlearning_rate: 5e-4\n")
    assert error_of(path) == f"{path}:6: key 'learning_rate' given twice (first on line 4)"

    nested = write_recipe("datasets:\n  - path: a.jsonl\n    type: qa\n    path: b.jsonl\noutput_dir: out\n", "n.yaml")
    assert error_of(nested) == f"{nested}:4: key 'datasets.0.path' given twice (first on line 2)"


def test_the_same_key_in_two_list_items_is_no_repeat(write_recipe):
    path = write_recipe("datasets:\n  - path: a.jsonl\n  - path: b.jsonl\noutput_dir: out\n")
    assert [d.path.name for d in load_recipe(path, require_datasets=False).datasets] == ["a.jsonl", "b.jsonl"]


def test_wrong_type_names_the_key_line_and_value(write_recipe):
    path = write_recipe(MINIMAL + "lora_r: eight\n")
    message = error_of(path)
    assert message.startswith(f"{path}:4: 'lora_r':")
    assert "integer" in message and "'eight'" in message


@pytest.mark.parametrize(("item", "says"), [("num_epochs=inf", "finite"), ("learning_rate=nan", "finite"),
                                             ("seed=-1", "greater than or equal to 0")])  # fmt: skip
def test_a_number_a_run_cannot_use_is_refused(write_recipe, item, says):
    # inf epochs would be a run without end; numpy takes seeds from 0 to 2**32 - 1 only (found at training).
    assert says in error_of(write_recipe(MINIMAL), [item])


@pytest.mark.parametrize("written", ["output_dir:", "lora_r:"])
def test_a_key_left_empty_that_needs_a_value_says_so(write_recipe, written):
    path = write_recipe(
        "datasets:\n  - path: facts.jsonl\n" + written + "\n" + ("" if "output" in written else "output_dir: o\n")
    )
    key = written.rstrip(":")
    assert error_of(path) == f"{path}:3: '{key}': needs a value (it is empty)"


def test_out_of_range_value_is_refused(write_recipe):
    path = write_recipe(MINIMAL + "learning_rate: -1\n")
    assert error_of(path).startswith(f"{path}:4: 'learning_rate': Input should be greater than 0")


def test_an_unknown_chat_template_name_is_refused_with_its_line_before_any_model_loads(write_recipe):
    path = write_recipe(MINIMAL + "chat_template: llama2\n")
    message = error_of(path)
    assert message == (
        f"{path}:4: 'chat_template': not a template name nor a Jinja string: use tokenizer_default, chatml, "
        "llama3, phi_3, qwen_25 or tokenizer_default_fallback_chatml (got 'llama2')"
    )


def test_an_axolotl_template_not_built_in_points_to_the_models_own(write_recipe):
    path = write_recipe(MINIMAL + "chat_template: qwen3\n")
    assert error_of(path) == (
        f"{path}:4: 'chat_template': an Axolotl template sleeptrain does not write out: use tokenizer_default (the "
        "model's own template), a Jinja string, or chatml, llama3, phi_3, qwen_25 (got 'qwen3')"
    )


@pytest.mark.parametrize(
    "template", ["llama3", "tokenizer_default_fallback_phi_3", "{% for m in messages %}{{ m['content'] }}{% endfor %}"]
)
def test_axolotls_template_names_and_jinja_strings_are_recipes_templates(write_recipe, template):
    path = write_recipe(MINIMAL)
    assert load_recipe(path, [f"chat_template={template}"]).chat_template == template


def test_every_template_name_a_recipe_takes_has_a_format():
    from sleeptrain.config import CHAT_TEMPLATE_NAMES
    from sleeptrain.data.render import NAMED_TEMPLATES

    assert set(CHAT_TEMPLATE_NAMES) == {"tokenizer_default", *NAMED_TEMPLATES}


def test_wrong_value_inside_a_dataset_entry_names_its_line(write_recipe):
    path = write_recipe("datasets:\n  - path: facts.jsonl\n    type: csv\noutput_dir: out\n")
    message = error_of(path)
    assert message.startswith(f"{path}:3: 'datasets.0.type':")
    assert "'csv'" in message


def test_wrong_value_for_a_union_key_names_the_key_itself(write_recipe):
    path = write_recipe(MINIMAL + "bf16: maybe\n")
    message = error_of(path)
    assert message.startswith(f"{path}:4: 'bf16':")


def test_missing_datasets_is_named(write_recipe):
    path = write_recipe("output_dir: out\n")
    assert error_of(path) == f"{path}: missing required key 'datasets'"


def test_a_dataset_entry_without_a_path_names_its_line(write_recipe):
    path = write_recipe("datasets:\n  - type: qa\noutput_dir: out\n")
    assert error_of(path) == f"{path}:2: missing required key 'datasets.0.path'"


def test_missing_output_dir_is_named(write_recipe):
    assert "missing required key 'output_dir'" in error_of(write_recipe("datasets:\n  - path: a.jsonl\n"))


def test_missing_recipe_file(tmp_path):
    path = tmp_path / "nowhere.yaml"
    assert error_of(path) == f"{path}: no such recipe file"


def test_a_folder_is_not_a_recipe(tmp_path):
    assert "is a folder" in error_of(tmp_path)


def test_non_utf8_recipe_names_the_line_and_byte(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_bytes(b"datasets:\n  - path: facts.jsonl\n# caf\xe9\noutput_dir: out\n")
    assert error_of(path) == f"{path}:3: not valid UTF-8 (byte 0xe9)"


# ------------------------------------------------------------------------------------------ data paths


def test_dataset_paths_relative_to_the_recipe_folder_are_found(tmp_path, monkeypatch):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "facts.jsonl").write_text("{}\n")
    (folder / "recipe.yaml").write_text(MINIMAL)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    recipe = load_recipe(folder / "recipe.yaml")

    assert recipe.datasets[0].path == folder / "facts.jsonl"
    assert recipe.datasets[0].path.exists()


def test_test_dataset_paths_relative_to_the_recipe_folder_are_found(tmp_path, monkeypatch):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "eval.jsonl").write_text("{}\n")
    (folder / "recipe.yaml").write_text(MINIMAL + "test_datasets: eval.jsonl\n")
    monkeypatch.chdir(tmp_path)

    assert load_recipe(folder / "recipe.yaml").test_datasets[0].path == folder / "eval.jsonl"


def test_a_checkpoint_beside_the_recipe_is_found(tmp_path, monkeypatch):
    folder = tmp_path / "project"
    (folder / "run" / "checkpoints" / "checkpoint-4").mkdir(parents=True)
    (folder / "run" / "checkpoints" / "checkpoint-4" / "trainer_state.json").write_text("{}")
    (folder / "recipe.yaml").write_text(MINIMAL + "resume_from_checkpoint: run/checkpoints/checkpoint-4\n")
    monkeypatch.chdir(tmp_path)

    assert load_recipe(folder / "recipe.yaml").resume_from_checkpoint == folder / "run" / "checkpoints" / "checkpoint-4"


def test_a_checkpoint_that_is_not_one_is_named_with_its_line_before_any_model_loads(write_recipe, tmp_path):
    path = write_recipe(MINIMAL + f"resume_from_checkpoint: {tmp_path}\n")
    assert error_of(path) == (
        f"{path}:4: resume_from_checkpoint: {tmp_path} is not a checkpoint (it has no trainer_state.json; a run's "
        "checkpoints are output_dir/checkpoints/checkpoint-N)"
    )


def test_dataset_paths_relative_to_the_working_directory_come_first(tmp_path, monkeypatch):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "facts.jsonl").write_text("{}\n")
    (folder / "recipe.yaml").write_text(MINIMAL)
    (tmp_path / "facts.jsonl").write_text("{}\n")
    monkeypatch.chdir(tmp_path)

    assert load_recipe(folder / "recipe.yaml").datasets[0].path == Path("facts.jsonl")


def test_an_anchor_prompts_file_beside_the_recipe_is_found(tmp_path, monkeypatch):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "facts.jsonl").write_text("{}\n")
    (folder / "anchors.jsonl").write_text('{"prompt": "What is the capital of France?"}\n')
    (folder / "recipe.yaml").write_text(MINIMAL + "anchor_prompts: anchors.jsonl\n")
    monkeypatch.chdir(tmp_path)

    assert load_recipe(folder / "recipe.yaml").anchor_prompts.exists()


def test_recipes_can_be_built_in_python_too():
    recipe = Recipe(datasets=[DatasetConfig(path="facts.jsonl")], output_dir="out", adapter="qlora")
    assert recipe.load_in_4bit is True
    with pytest.raises(ValueError):
        Recipe(datasets=[], output_dir="out")


# ------------------------------------------------------------------------------------- bundled recipes


def test_every_bundled_recipe_loads():
    recipes = Path(__file__).resolve().parents[1] / "recipes"
    found = sorted(recipes.glob("*.yaml"))
    assert len(found) >= 5
    for path in found:
        # sleep.yaml is for `sleeptrain sleep`, whose memories come from the store, not from datasets.
        recipe = load_recipe(path, require_datasets=path.name != "sleep.yaml")
        for dataset in recipe.datasets or []:
            assert (recipes.parent / dataset.path).is_file() or Path(dataset.path).is_file(), (path, dataset.path)
