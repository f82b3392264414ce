"""One training run: wrapping the model for the recipe's adapter, training with Trainer, and measuring it."""

from __future__ import annotations

import logging

import pytest
import torch

from sleeptrain.config import DatasetConfig, Recipe
from sleeptrain.data.mixing import build_training_dataset, load_recipe_conversations
from sleeptrain.errors import SleeptrainError
from sleeptrain.models import load_base_model
from sleeptrain.training import RunMetrics, prepare_for_training, train_model, use_bf16
from sleeptrain.training.precision import say_precision
from tests.conftest import read_scalars


def recipe_for(base_model: str, tmp_path, **keys) -> Recipe:
    return Recipe(
        datasets=[DatasetConfig(path=tmp_path / "facts.jsonl")],
        output_dir=tmp_path / "run",
        base_model=base_model,
        **({"bf16": False} | keys),
    )


# ---------------------------------------------------------------------------------------- the adapter


def test_lora_trains_only_the_adapter_weights(tiny_llama, tmp_path):
    recipe = recipe_for(tiny_llama, tmp_path, lora_r=4)
    model = prepare_for_training(recipe, load_base_model(recipe, use_bf16=False).model)

    trainable = [name for name, p in model.named_parameters() if p.requires_grad]

    assert trainable and all("lora_" in name for name in trainable)
    assert {name.split(".lora_")[0].rsplit(".", 1)[-1] for name in trainable} == {
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    }
    assert model.peft_config["default"].r == 4
    assert model.config.use_cache is False


def test_lora_only_on_the_recipes_target_modules(tiny_llama, tmp_path):
    recipe = recipe_for(tiny_llama, tmp_path, lora_target_modules=["q_proj", "v_proj"])
    model = prepare_for_training(recipe, load_base_model(recipe, use_bf16=False).model)
    trainable = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"q_proj", "v_proj"}


def test_bf16_lora_stores_the_frozen_linears_in_bf16_when_the_adapter_goes_on(tiny_llama, tmp_path):
    recipe = recipe_for(tiny_llama, tmp_path, bf16=True)
    model = prepare_for_training(recipe, load_base_model(recipe, use_bf16=True).model)
    weights = dict(model.named_parameters())
    assert weights["base_model.model.model.layers.0.mlp.down_proj.base_layer.weight"].dtype == torch.bfloat16
    assert weights["base_model.model.model.embed_tokens.weight"].dtype == torch.bfloat16
    assert weights["base_model.model.model.norm.weight"].dtype == torch.float32
    assert {p.dtype for p in weights.values() if p.requires_grad} == {torch.float32}


def test_an_fp32_lora_on_a_cpu_stores_its_frozen_weights_in_bf16_unless_the_recipe_says_not(tiny_llama, tmp_path):
    # bf16_storage: auto, on a CPU without bf16 arithmetic (bf16: false here): the weights in bf16, the
    # arithmetic fp32 (models/bf16_storage.py); false keeps the fp32 weights as loaded.
    name = "base_model.model.model.layers.0.mlp.down_proj.base_layer.weight"
    for setting, dtype in (("auto", torch.bfloat16), (True, torch.bfloat16), (False, torch.float32)):
        recipe = recipe_for(tiny_llama, tmp_path, bf16_storage=setting)
        model = prepare_for_training(recipe, load_base_model(recipe, use_bf16=False).model)
        weights = dict(model.named_parameters())
        assert weights[name].dtype == dtype, setting
        assert weights["base_model.model.model.norm.weight"].dtype == torch.float32
        assert {p.dtype for p in weights.values() if p.requires_grad} == {torch.float32}


def test_an_adapters_mlps_keep_half_their_activations_unless_checkpointing_keeps_fewer(tiny_llama, tmp_path):
    for checkpointing in (False, True):
        recipe = recipe_for(tiny_llama, tmp_path, gradient_checkpointing=checkpointing)
        model = prepare_for_training(recipe, load_base_model(recipe, use_bf16=False).model)
        assert model.base_model.model.model.layers[0].mlp._lean_backward is not checkpointing


def test_lora_only_on_the_recipes_layers(tiny_llama, tmp_path):
    recipe = recipe_for(tiny_llama, tmp_path, peft_layers_to_transform=[1])
    model = prepare_for_training(recipe, load_base_model(recipe, use_bf16=False).model)
    layers = {int(n.split(".layers.")[1].split(".")[0]) for n, p in model.named_parameters() if p.requires_grad}
    assert layers == {1}


def test_a_layer_the_model_does_not_have_is_named(tiny_llama, tmp_path):
    recipe = recipe_for(tiny_llama, tmp_path, peft_layers_to_transform=[0, 7])
    with pytest.raises(
        SleeptrainError, match=r"peft_layers_to_transform: no layer 7 in this model \(its layers are 0-1\)"
    ):
        prepare_for_training(recipe, load_base_model(recipe, use_bf16=False).model)


def test_loraplus_gives_the_b_matrices_a_larger_learning_rate(tiny_llama, tmp_path):
    from sleeptrain.training.run import _loraplus_optimizer

    recipe = recipe_for(tiny_llama, tmp_path, learning_rate=1e-3, loraplus_lr_ratio=16)
    model = prepare_for_training(recipe, load_base_model(recipe, use_bf16=False).model)

    optimizer = _loraplus_optimizer(recipe, model)

    rate = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    by_name = {name: rate[id(p)] for name, p in model.named_parameters() if p.requires_grad}
    assert {lr for name, lr in by_name.items() if "lora_A" in name} == {1e-3}
    assert all(lr == pytest.approx(16e-3) for name, lr in by_name.items() if "lora_B" in name)
    assert _loraplus_optimizer(recipe_for(tiny_llama, tmp_path), model) is None  # off unless asked for


def test_full_fine_tuning_trains_every_weight(tiny_llama, tmp_path):
    recipe = recipe_for(tiny_llama, tmp_path, adapter="full")
    base = load_base_model(recipe, use_bf16=False).model

    model = prepare_for_training(recipe, base)

    assert model is base
    assert all(p.requires_grad for p in model.parameters())
    assert model.config.use_cache is False


# ------------------------------------------------------------------------------------------ precision


def test_bf16_false_is_always_respected():
    assert use_bf16(False) is False


def test_bf16_auto_is_a_decision():
    assert use_bf16("auto") in (True, False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="about CPU-only machines")
def test_bf16_on_a_cpu_without_native_bf16_warns_but_runs(monkeypatch, caplog):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    with caplog.at_level(logging.WARNING, logger="sleeptrain"):
        assert use_bf16(True) is True
        assert use_bf16("auto") is False
        say_precision(True, "auto")
    assert caplog.messages == ["bf16: this CPU has no native bf16; training will be slow"]


# ------------------------------------------------------------------------------------------ training


def test_training_memorises_three_facts(tiny_llama, tmp_path, write_jsonl, qa_rows):
    """A tiny model shown three facts 40 times at a high learning rate must fit them: the loss falls."""
    write_jsonl("facts.jsonl", qa_rows)
    recipe = recipe_for(
        tiny_llama,
        tmp_path,
        adapter="full",
        learning_rate=3e-3,
        max_steps=40,
        micro_batch_size=3,
        logging_steps=1,
        lr_scheduler="constant",
        question_variants=1,
    )
    loaded = load_base_model(recipe, use_bf16=False)
    dataset = build_training_dataset(recipe, loaded.tokenizer, load_recipe_conversations(recipe))
    model = prepare_for_training(recipe, loaded.model)

    metrics = train_model(recipe, model, loaded.tokenizer, dataset, False, tmp_path / "run" / "model", quiet=True)

    losses = read_scalars(tmp_path / "run" / "logs")["train/loss"]
    assert len(losses) == 40
    assert metrics.final_loss == pytest.approx(losses[-1], rel=1e-4)
    assert losses[-1] < 0.25 * losses[0], losses
    assert isinstance(metrics, RunMetrics) and metrics.steps == 40
    # 3 examples a step, so 40 steps are 40 epochs
    assert metrics.epochs == pytest.approx(40.0)
    assert metrics.train_tokens == 40 * sum(len(ids) for ids in dataset["input_ids"])


def test_the_progress_bar_ends_full_when_a_run_ends_early():
    """Every example learnt before the planned steps: the bar a person watches ends at 100 %, not part-way."""
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from sleeptrain.training.run import LossOnProgressBar

    bar = LossOnProgressBar()
    args = TrainingArguments(output_dir="unused", report_to=[])
    state = TrainerState(max_steps=60)
    bar.on_train_begin(args, state, TrainerControl())
    state.global_step = 46
    bar.on_step_end(args, state, TrainerControl())
    shown = bar.training_bar

    bar.on_train_end(args, state, TrainerControl())

    assert shown.total == shown.n == 46


def test_the_progress_bar_shows_the_loss_and_the_examples_learnt():
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from sleeptrain.training.run import LossOnProgressBar

    bar = LossOnProgressBar(examples=50)
    args = TrainingArguments(output_dir="unused", report_to=[])
    state = TrainerState(max_steps=60)
    bar.on_train_begin(args, state, TrainerControl())

    bar.on_log(args, state, TrainerControl(), logs={"loss": 0.4567, "examples_learnt": 37})

    assert bar.training_bar.postfix == "loss=0.457, learnt=37/50"
    # The held-out examples' loss (val_set_size) joins them when it is evaluated, and stays.
    bar.on_log(args, state, TrainerControl(), logs={"eval_loss": 1.2345})
    bar.on_log(args, state, TrainerControl(), logs={"loss": 0.3, "examples_learnt": 40})
    assert bar.training_bar.postfix == "loss=0.300, learnt=40/50, eval=1.234"
    bar.on_train_end(args, state, TrainerControl())


def test_evaluation_draws_no_second_bar_where_the_output_is_not_a_terminal():
    """A log file or a pipe cannot move the cursor up to a bar under the training bar (tqdm writes "\x1b[A"
    for it): there the held-out examples' loss shows on the training bar alone."""
    import io

    from transformers import TrainerControl, TrainerState, TrainingArguments

    from sleeptrain.training.run import LossOnProgressBar

    bar = LossOnProgressBar()
    args = TrainingArguments(output_dir="unused", report_to=[])
    state = TrainerState(max_steps=6)
    bar.on_train_begin(args, state, TrainerControl())
    log = io.StringIO()
    bar.training_bar.fp = log

    bar.on_prediction_step(args, state, TrainerControl(), eval_dataloader=[1, 2, 3])

    assert bar.prediction_bar is None
    bar.on_evaluate(args, state, TrainerControl())
    bar.on_train_end(args, state, TrainerControl())
    assert "\x1b[A" not in log.getvalue()


def test_a_cpu_run_hands_the_memory_a_step_freed_back_to_the_system():
    import sys

    import psutil

    from sleeptrain.training.run import ReturnFreedMemory

    if not sys.platform.startswith("linux"):
        pytest.skip("malloc_trim is glibc's")
    process = psutil.Process()
    # What a step leaves behind: many mid-sized blocks freed, with one still in use above them, so that the
    # heap cannot shrink from its top by itself.
    blocks = [torch.ones(16 * 1024) for _ in range(4000)]  # 64 KB each, 256 MB in all
    kept = blocks.pop()
    del blocks
    before = process.memory_info().rss

    ReturnFreedMemory().on_step_end(None, None, None)

    assert kept.sum() == 16 * 1024
    assert process.memory_info().rss < before - 128 * 2**20


def test_passes_hold_at_most_640_tokens_on_a_cpu_by_default_and_what_a_recipe_says_elsewhere():
    from sleeptrain.training.run import CPU_TOKENS_PER_PASS, tokens_per_pass

    def recipe(**keys):
        return Recipe(datasets=[DatasetConfig(path="facts.jsonl")], output_dir="out", **keys)

    assert tokens_per_pass(recipe(), "cpu") == CPU_TOKENS_PER_PASS == 640
    assert tokens_per_pass(recipe(), "cuda") is None  # a GPU has the memory, and a pass costs it launches
    assert tokens_per_pass(recipe(max_tokens_per_pass=None), "cpu") is None
    assert tokens_per_pass(recipe(max_tokens_per_pass=300), "cuda") == 300


@pytest.mark.parametrize("grouped", [True, False])
def test_group_by_length_reaches_trainer_in_the_installed_transformers_spelling(grouped, tmp_path):
    # transformers 5.x replaced the group_by_length flag with train_sampling_strategy; the recipe key keeps
    # Axolotl's name and must mean the same under either.
    from transformers import TrainingArguments

    from sleeptrain.training.run import _sampling_arguments

    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, **_sampling_arguments(grouped))
    strategy = getattr(args, "train_sampling_strategy", None)
    by_length = strategy == "group_by_length" if strategy is not None else args.group_by_length
    assert by_length is grouped


# ------------------------------------------------------------------------------------------ a loss that is not a number


@pytest.mark.parametrize(
    ("scaled", "not_finite", "micro_batches", "stops"),
    [
        (False, 1, 8, True),  # no gradient scaler: the optimizer has written nan into the weights
        (True, 1, 8, False),  # fp16's scaler skipped that step; the others trained
        (True, 8, 8, True),  # every step since the last log overflowed: nothing trains
        (False, 0, 8, False),
    ],
)
def test_a_loss_that_is_not_a_number_stops_a_run_unless_fp16s_scaler_skipped_it(
    scaled, not_finite, micro_batches, stops
):
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from sleeptrain.training.loss import NonFiniteLosses
    from sleeptrain.training.run import StopOnNonFiniteLoss

    losses = NonFiniteLosses()
    for step in range(micro_batches):
        losses.add(torch.tensor(float("nan") if step < not_finite else 1.0))
    callback = StopOnNonFiniteLoss(losses, scaled=scaled)
    control = TrainerControl()

    callback.on_log(TrainingArguments(output_dir="unused", use_cpu=True), TrainerState(global_step=8), control)

    assert control.should_training_stop is stops
    assert callback.tripped_at == ((1, 8) if stops else None)
    assert losses.take() == (0, 0)  # taken: the next log counts its own steps
