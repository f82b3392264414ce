"""`sleeptrain.workflows.train(recipe)`: everything a run writes, checked the way a user would use it
(plain transformers + peft loading the saved folders)."""

from __future__ import annotations

import json
import logging
import math
import re
from typing import ClassVar

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainingArguments

from sleeptrain.config import DatasetConfig, Recipe, load_recipe
from sleeptrain.errors import SleeptrainError
from sleeptrain.workflows import TrainResult, train
from tests.conftest import read_scalars

METRIC_KEYS = {"train_tokens", "train_runtime_s", "tokens_per_second", "peak_rss_mb", "final_loss"}


class RecordedArguments(TrainingArguments):
    """TrainingArguments that keep what a run handed them (train_model builds its own). At module level: Trainer
    pickles its arguments."""

    handed: ClassVar[dict] = {}
    last: ClassVar[TrainingArguments | None] = None

    def __init__(self, **kwargs):
        RecordedArguments.handed = kwargs
        RecordedArguments.last = self
        super().__init__(**kwargs)


@pytest.fixture
def make_recipe(tmp_path, write_jsonl, qa_rows):
    """A quick recipe on the three QA facts: a couple of steps, fp32, no anchors unless asked."""
    facts = write_jsonl("facts.jsonl", qa_rows)

    def make(base_model: str, **keys) -> Recipe:
        settings = dict(max_steps=2, bf16=False, logging_steps=1, anchor_ratio=0, lora_r=4, question_variants=1)
        settings = dict(datasets=[DatasetConfig(path=facts)], **settings) | keys
        return Recipe(output_dir=tmp_path / "run", base_model=base_model, **settings)

    return make


def lora_b_weights(model) -> list[torch.Tensor]:
    return [p for name, p in model.named_parameters() if "lora_B" in name]


def test_lora_run_writes_a_loadable_adapter_metrics_and_logs(tiny_model_dir, make_recipe, tmp_path):
    from peft import PeftModel

    result = train(make_recipe(tiny_model_dir), quiet=True)

    run = tmp_path / "run"
    assert isinstance(result, TrainResult)
    assert result.adapter_dir == run / "adapter"
    assert result.base_model == tiny_model_dir
    assert result.examples == 3

    # The adapter names its base model, and plain transformers + peft load the pair.
    config = json.loads((run / "adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == tiny_model_dir
    base = AutoModelForCausalLM.from_pretrained(config["base_model_name_or_path"])
    model = PeftModel.from_pretrained(base, str(run / "adapter"))
    # LoRA's B matrices start at zero: non-zero ones are the trained weights, saved.
    assert lora_b_weights(model) and any(b.abs().sum() > 0 for b in lora_b_weights(model))

    # The tokenizer (with its chat template) is saved beside the adapter.
    tokenizer = AutoTokenizer.from_pretrained(str(run / "adapter"))
    assert tokenizer.chat_template and len(tokenizer) == base.get_input_embeddings().num_embeddings

    metrics = json.loads((run / "metrics.json").read_text())
    assert METRIC_KEYS <= set(metrics)
    assert metrics["train_tokens"] > 0 and metrics["tokens_per_second"] > 0
    assert metrics["train_runtime_s"] >= 0 and metrics["peak_rss_mb"] > 0
    assert metrics["final_loss"] > 0 and metrics["steps"] == 2
    assert metrics == result.metrics.as_dict()

    losses = read_scalars(run / "logs")["train/loss"]
    assert len(losses) == 2
    assert losses[-1] == pytest.approx(metrics["final_loss"], rel=1e-4)


def test_each_run_into_one_output_dir_logs_to_a_folder_of_its_own(tiny_llama, make_recipe, tmp_path):
    """A second run into the same output_dir is a second TensorBoard run, not more steps of the first's curve."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(make_recipe(tiny_llama), quiet=True)
    train(make_recipe(tiny_llama, learning_rate=5e-4), quiet=True)

    runs = sorted(path for path in (tmp_path / "run" / "logs").iterdir())
    assert len(runs) == 2 and all(path.is_dir() for path in runs)
    for run in runs:
        events = EventAccumulator(str(run))
        events.Reload()
        assert [event.step for event in events.Scalars("train/loss")] == [1, 2]


def test_the_resolved_recipe_is_saved_and_loads_again(tiny_llama, make_recipe, tmp_path):
    train(make_recipe(tiny_llama, learning_rate=5e-4), quiet=True)

    saved = load_recipe(tmp_path / "run" / "recipe.yaml")

    assert saved.base_model == tiny_llama
    assert saved.learning_rate == 5e-4 and saved.max_steps == 2
    assert saved.datasets[0].path == tmp_path / "facts.jsonl"


def test_full_fine_tuning_writes_a_whole_model(tiny_llama, make_recipe, tmp_path):
    result = train(make_recipe(tiny_llama, adapter="full", learning_rate=1e-2), quiet=True)

    assert result.adapter_dir == tmp_path / "run" / "model"
    assert not (tmp_path / "run" / "adapter").exists()
    trained = AutoModelForCausalLM.from_pretrained(str(result.adapter_dir))
    base = AutoModelForCausalLM.from_pretrained(tiny_llama)
    assert trained.config.model_type == "llama"
    assert not torch.equal(trained.model.layers[0].mlp.down_proj.weight, base.model.layers[0].mlp.down_proj.weight)
    assert AutoTokenizer.from_pretrained(str(result.adapter_dir)).chat_template
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["train_tokens"] > 0


def test_qlora_trains_a_4bit_model_and_saves_an_adapter(tiny_llama, make_recipe, tmp_path):
    pytest.importorskip("bitsandbytes")

    result = train(make_recipe(tiny_llama, adapter="qlora"), quiet=True)

    config = json.loads((result.adapter_dir / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == tiny_llama
    assert (result.adapter_dir / "adapter_model.safetensors").exists()
    assert load_recipe(tmp_path / "run" / "recipe.yaml").load_in_4bit is True
    assert result.metrics.train_tokens > 0


@pytest.mark.parametrize("bf16", [False, True])
def test_lora_on_an_8bit_model_trains_and_saves_an_adapter_plain_peft_loads(tiny_llama, make_recipe, bf16):
    pytest.importorskip("bitsandbytes")
    from peft import PeftModel

    # With bf16, the anchors distilled and their directions kept out of the adapter, as in a default run.
    keys = dict(anchor_ratio=0.5) if bf16 else {}
    result = train(make_recipe(tiny_llama, load_in_8bit=True, bf16=bf16, max_steps=4, **keys), quiet=True)

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama), str(result.adapter_dir))
    assert any(b.abs().sum() > 0 for b in lora_b_weights(model))
    assert load_recipe(result.adapter_dir.parent / "recipe.yaml").load_in_8bit is True
    assert math.isfinite(result.metrics.final_loss)


@pytest.mark.parametrize(("key", "flag"), [("peft_use_dora", "use_dora"), ("peft_use_rslora", "use_rslora")])
def test_dora_and_rslora_adapters_train_on_every_path_and_load_in_plain_peft(tiny_llama, make_recipe, key, flag):
    from peft import PeftModel

    # bf16 on a CPU: frozen weights stored in bf16, the labelled-logits loss, anchors distilled, directions kept.
    result = train(make_recipe(tiny_llama, bf16=True, anchor_ratio=0.5, **{key: True}), quiet=True)

    config = json.loads((result.adapter_dir / "adapter_config.json").read_text())
    assert config[flag] is True
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama), str(result.adapter_dir))
    assert any(b.abs().sum() > 0 for b in lora_b_weights(model))
    magnitudes = [name for name, _ in model.named_parameters() if "lora_magnitude_vector" in name]
    assert bool(magnitudes) == (key == "peft_use_dora")


@pytest.mark.parametrize(("kwargs", "reentrant"), [(None, False), ({"use_reentrant": True}, True)])
def test_gradient_checkpointing_kwargs_reach_torch_and_every_layer_still_learns(
    tiny_llama, make_recipe, monkeypatch, kwargs, reentrant
):
    import transformers.modeling_utils
    from safetensors.torch import load_file

    calls = []
    checkpoint = transformers.modeling_utils.checkpoint

    def recording_checkpoint(function, *args, **keywords):  # the real checkpoint, its arguments noted
        calls.append(keywords.get("use_reentrant"))
        return checkpoint(function, *args, **keywords)

    monkeypatch.setattr(transformers.modeling_utils, "checkpoint", recording_checkpoint)
    recipe = make_recipe(tiny_llama, gradient_checkpointing=True, gradient_checkpointing_kwargs=kwargs, max_steps=3)

    result = train(recipe, quiet=True)

    assert calls and set(calls) == {reentrant}
    # B starts at zero and learns only from a gradient that came back through every checkpointed layer above.
    adapter = load_file(str(result.adapter_dir / "adapter_model.safetensors"))
    first_layer = [name for name in adapter if ".layers.0." in name and "lora_B" in name]
    assert first_layer and all(adapter[name].abs().sum() > 0 for name in first_layer)


def test_activation_offloading_on_a_cpu_trains_as_without_it_and_says_so(tiny_llama, make_recipe, caplog):
    recipe = make_recipe(tiny_llama, gradient_checkpointing=True, activation_offloading=True)

    with caplog.at_level(logging.INFO, logger="sleeptrain"):
        result = train(recipe, quiet=True)

    assert result.metrics.steps == 2
    assert "activation_offloading: no effect here (the activations are in CPU memory already)" in caplog.messages


def test_activation_offloading_on_a_gpu_asks_trainer_to_offload(tiny_llama, make_recipe, monkeypatch):
    from sleeptrain.training.run import _CHECKPOINTING_ARGUMENT, _checkpointing_arguments

    # No GPU here: standing in for CUDA shows what Trainer is handed there (BENCHMARKS.md: not run on a GPU).
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    recipe = make_recipe(tiny_llama, gradient_checkpointing=True, activation_offloading=True)

    arguments = _checkpointing_arguments(recipe)

    assert arguments[_CHECKPOINTING_ARGUMENT] is True
    assert arguments[f"{_CHECKPOINTING_ARGUMENT}_kwargs"] == {"offload": True}


def test_an_axolotl_recipes_tf32_trains_on_a_cpu_as_without_it(tiny_llama, make_recipe, caplog):
    with caplog.at_level(logging.INFO, logger="sleeptrain"):
        result = train(make_recipe(tiny_llama, tf32=True), quiet=True)

    assert result.metrics.steps == 2 and "tf32: no effect here" in caplog.text


def test_a_model_with_its_own_code_trains_with_trust_remote_code_and_its_adapter_loads(
    model_with_its_own_code, make_recipe
):
    from peft import PeftModel

    result = train(make_recipe(model_with_its_own_code, trust_remote_code=True, bf16=True), quiet=True)

    base = AutoModelForCausalLM.from_pretrained(model_with_its_own_code, trust_remote_code=True)
    model = PeftModel.from_pretrained(base, str(result.adapter_dir))
    assert type(base).__name__ == "TinyCustomForCausalLM"
    assert any(b.abs().sum() > 0 for b in lora_b_weights(model))


def test_a_recipe_written_for_fsdp_trains_in_one_process_and_says_fsdp_is_not_applied(tiny_llama, make_recipe, caplog):
    from sleeptrain.config import FsdpConfig

    recipe = make_recipe(tiny_llama, fsdp_config=FsdpConfig(offload_params=True), fsdp_version=2)
    with caplog.at_level(logging.WARNING, logger="sleeptrain"):
        result = train(recipe, quiet=True)

    assert result.metrics.steps == 2
    assert "fsdp: not applied (one process has nothing to shard; run it under accelerate launch)" in caplog.messages


def test_a_run_says_in_words_what_it_trains(tiny_llama, make_recipe, caplog):
    with caplog.at_level(logging.INFO, logger="sleeptrain"):
        train(make_recipe(tiny_llama, num_epochs=1), quiet=True)

    assert "3 examples from 1 file, at most 1 epoch, 0 anchors, computing in fp32" in caplog.messages


def test_a_run_that_computes_in_fp16_hands_it_to_trainer_and_says_so(tiny_llama, make_recipe, monkeypatch, caplog):
    # Which machines compute in fp16 is tests/training/test_precision.py's; here that answer stands in for a
    # T4's, and the run on this CPU (where accelerate itself runs fp16 in fp32) shows where it goes.
    import sleeptrain.training.precision as precision
    import sleeptrain.training.run as run

    for module in (precision, run):
        monkeypatch.setattr(module, "use_fp16", lambda bf16, fp16: True)
    monkeypatch.setattr(run, "TrainingArguments", RecordedArguments)
    with caplog.at_level(logging.INFO, logger="sleeptrain"):
        result = train(make_recipe(tiny_llama, anchor_ratio=0.5), quiet=True)

    assert RecordedArguments.handed["fp16"] is True and RecordedArguments.handed["bf16"] is False
    assert any(message.endswith("anchors, computing in fp16") for message in caplog.messages)
    assert math.isfinite(result.metrics.final_loss)


def test_a_recipe_that_computes_in_fp32_stays_fp32_under_an_accelerate_config_with_mixed_precision(
    tiny_llama, make_recipe, monkeypatch, caplog
):
    # `accelerate launch` with a config of `mixed_precision: bf16` hands it on through this variable, which
    # transformers takes where neither bf16 nor fp16 is set: the run trained under bf16 autocast despite bf16: false.
    import sleeptrain.training.run as run

    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    monkeypatch.setattr(run, "TrainingArguments", RecordedArguments)
    with caplog.at_level(logging.INFO, logger="sleeptrain"):
        result = train(make_recipe(tiny_llama, bf16=False), quiet=True)

    assert RecordedArguments.last.mixed_precision == "no"  # what Trainer hands its Accelerator
    assert (
        "accelerate's mixed_precision bf16 set aside: the recipe computes in fp32 (bf16: true or fp16: true change it)"
        in caplog.messages
    )
    assert result.metrics.steps == 2


def test_warmup_in_steps_starts_the_learning_rate_low(tiny_llama, make_recipe, tmp_path):
    train(make_recipe(tiny_llama, lr_scheduler="constant_with_warmup", learning_rate=1e-3), quiet=True)
    assert read_scalars(tmp_path / "run" / "logs")["train/learning_rate"][0] == pytest.approx(1e-3)

    recipe = make_recipe(tiny_llama, lr_scheduler="constant_with_warmup", learning_rate=1e-3, warmup_steps=10)
    recipe.output_dir = tmp_path / "warm"
    train(recipe, quiet=True)
    assert read_scalars(tmp_path / "warm" / "logs")["train/learning_rate"][0] < 3e-4


def test_a_cosine_schedule_with_a_floor_ends_at_that_share_of_the_learning_rate(tiny_llama, make_recipe, tmp_path):
    recipe = make_recipe(tiny_llama, max_steps=4, lr_scheduler="cosine", learning_rate=1e-3, cosine_min_lr_ratio=0.5)

    train(recipe, quiet=True)

    rates = read_scalars(tmp_path / "run" / "logs")["train/learning_rate"]
    assert rates == sorted(rates, reverse=True) and 5e-4 <= rates[-1] < 6e-4  # plain cosine ends near 0


def test_neftune_noise_reaches_the_embeddings_the_loss_reads(tiny_llama, make_recipe, tmp_path):
    plain = train(make_recipe(tiny_llama, max_steps=1), quiet=True).metrics.final_loss
    noisy_recipe = make_recipe(tiny_llama, max_steps=1, neftune_noise_alpha=50.0)
    noisy_recipe.output_dir = tmp_path / "noisy"
    noisy = train(noisy_recipe, quiet=True).metrics.final_loss

    assert noisy != pytest.approx(plain, rel=1e-4)


def test_the_loss_watchdog_stops_a_run_whose_loss_stays_high_and_saves_nothing(tiny_llama, make_recipe, tmp_path):
    recipe = make_recipe(tiny_llama, max_steps=6, loss_watchdog_threshold=0.001, loss_watchdog_patience=2)

    with pytest.raises(SleeptrainError, match=r"the loss was above 0.001 at 2 logged steps in a row \(step 2: "):
        train(recipe, quiet=True)

    assert not (tmp_path / "run" / "adapter").exists()
    assert len(read_scalars(tmp_path / "run" / "logs")["train/loss"]) == 2  # stopped there, not at step 6


@pytest.fixture
def model_that_overflows(tiny_llama, tmp_path):
    """The tiny Llama with one layer's weights past fp32's range (inf), as a model whose activations overflow a
    run's precision gives: its loss is not a number from the first step."""
    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    with torch.no_grad():
        model.model.layers[0].mlp.down_proj.weight.mul_(1e39)
    folder = tmp_path / "overflowing"
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_llama).save_pretrained(folder)
    return str(folder)


def test_a_loss_that_is_not_a_number_stops_the_run_and_saves_no_adapter(model_that_overflows, make_recipe, tmp_path):
    # It used to train on, save an adapter of nan weights and report a final loss of 0.
    recipe = make_recipe(model_that_overflows, max_steps=6, logging_steps=1)

    with pytest.raises(SleeptrainError) as error:
        train(recipe, quiet=True)

    assert str(error.value) == (
        "the loss was not a number (nan or inf) in step 1; training stopped and no adapter was saved (the base "
        "model's weights, or a learning_rate of 0.002, may be at fault)"
    )
    assert not (tmp_path / "run" / "adapter").exists()
    # What TensorBoard and the progress bar are given: nan, not the 0.0 Trainer logs in its place.
    assert [math.isnan(loss) for loss in read_scalars(tmp_path / "run" / "logs")["train/loss"]] == [True]


def memorising(tiny_llama: str, tmp_path, dataset: DatasetConfig, **keys) -> Recipe:
    """A recipe that trains the tiny model until it writes its few examples token for token: full fine-tuning
    (the tiny random model learns too slowly through LoRA for a test), no anchors, a large step, 40 epochs."""
    return Recipe(
        datasets=[dataset],
        output_dir=tmp_path / "run",
        base_model=tiny_llama,
        adapter="full",
        bf16=False,
        anchor_ratio=0,
        learning_rate=2e-2,
        num_epochs=40,
        **keys,
    )


def test_plain_text_notes_are_trained_whole_until_they_are_written_token_for_token(tiny_llama, write_jsonl, tmp_path):
    # Axolotl's type: completion: text without the chat template, every token under the loss.
    notes = write_jsonl(
        "notes.jsonl",
        [{"text": "Ann Varga was born in Lyon in 1962."}, {"text": "Bo Lind keeps bees on a roof in Oslo."}],
    )
    result = train(memorising(tiny_llama, tmp_path, DatasetConfig(path=notes, type="completion")), quiet=True)

    losses = read_scalars(tmp_path / "run" / "logs")["train/loss"]
    assert losses[-1] < losses[0] / 10
    assert result.metrics.examples_learnt == 2 and result.metrics.steps < 40  # the run ended once both were


def test_a_note_longer_than_sequence_len_is_trained_whole_in_windows(tiny_llama, write_jsonl, tmp_path, caplog):
    note = "Ann Varga was born in Lyon in 1962. She keeps bees on a roof. Bo Lind is her neighbour in Oslo."
    notes = write_jsonl("notes.jsonl", [{"text": note}])
    recipe = memorising(tiny_llama, tmp_path, DatasetConfig(path=notes, type="completion"), sequence_len=16)

    with caplog.at_level(logging.INFO, logger="sleeptrain"):
        result = train(recipe, quiet=True)

    # Every window is an example of its own, and the run ends once each is written token for token: the
    # whole note was learnt, not only its first 16 tokens.
    assert result.examples > 2 and result.metrics.examples_learnt == result.examples
    assert f"1 text longer than that split into {result.examples} windows" in caplog.text
    assert "cut" not in caplog.text


def test_a_held_out_note_longer_than_sequence_len_is_evaluated_whole_in_windows(tiny_llama, write_jsonl, make_recipe):
    short = write_jsonl("notes.jsonl", [{"text": "Ann Varga keeps bees."}])
    long = write_jsonl("held.jsonl", [{"text": "Bo Lind was born in Oslo in 1962. He sails on Sundays with his dog."}])
    recipe = make_recipe(
        tiny_llama,
        datasets=[DatasetConfig(path=short, type="completion")],
        test_datasets=[DatasetConfig(path=long, type="completion")],
        max_steps=1,
        sequence_len=12,
    )

    result = train(recipe, quiet=True)

    assert result.held_out > 1 and result.metrics.eval_loss is not None


def test_rows_past_the_positions_the_base_model_was_trained_on_are_a_warning(
    tiny_llama, write_jsonl, make_recipe, caplog
):
    # The tiny models were "trained" on 256 positions; a note longer than that, in windows of 512 tokens.
    note = " ".join(f"Day {day}: Ann Varga fed the bees in Lyon." for day in range(1, 41))
    notes = write_jsonl("notes.jsonl", [{"text": note}])
    recipe = make_recipe(tiny_llama, datasets=[DatasetConfig(path=notes, type="completion")], max_steps=1)

    with caplog.at_level(logging.WARNING, logger="sleeptrain"):
        train(recipe, quiet=True)
        warned = caplog.text
        caplog.clear()
        train(recipe.model_copy(update={"sequence_len": 256}), quiet=True)

    assert re.search(r"sequence_len=512 lets \d+ rows? run past the 256 positions the base model was trained", warned)
    assert "a sequence_len of at most 256 keeps every row within them" in warned
    assert "positions the base model was trained on" not in caplog.text  # in windows of 256, every row is within


def test_template_free_segments_train_only_their_labelled_text(tiny_llama, write_jsonl, tmp_path):
    # Axolotl's type: input_output: the texts joined as written, the loss on the labelled segments alone.
    rows = [
        {"segments": [{"label": False, "text": f"Q: Where was {name} born?\nA: "}, {"label": True, "text": town}]}
        for name, town in [("Ann Varga", "Lyon."), ("Bo Lind", "Oslo.")]
    ]
    dataset = DatasetConfig(path=write_jsonl("segments.jsonl", rows), type="input_output")

    result = train(memorising(tiny_llama, tmp_path, dataset), quiet=True)

    # Both answers written token for token after their questions, and the run ended early.
    assert result.examples == 2 and result.metrics.examples_learnt == 2 and result.metrics.steps < 40


def test_a_loss_under_the_watchdogs_threshold_trains_on(tiny_llama, make_recipe):
    result = train(make_recipe(tiny_llama, loss_watchdog_threshold=1000.0, loss_watchdog_patience=1), quiet=True)
    assert result.metrics.steps == 2 and result.adapter_dir.exists()


def test_an_axolotl_recipe_trains_as_written(tiny_llama, write_recipe, write_jsonl, qa_rows, tmp_path):
    from tests.test_axolotl_keys import AXOLOTL_RECIPE

    write_jsonl("facts.jsonl", qa_rows)
    text = AXOLOTL_RECIPE.replace("./tiny-llama", tiny_llama).replace("num_epochs: 4", "max_steps: 2")
    recipe = load_recipe(write_recipe(text.replace("./outputs/lora-out", str(tmp_path / "axolotl-run"))))

    result = train(recipe, quiet=True)

    assert result.metrics.steps == 2 and (tmp_path / "axolotl-run" / "adapter" / "adapter_config.json").exists()


def test_the_examples_counted_are_those_left_with_a_token_to_train(tiny_llama, make_recipe, write_jsonl, qa_rows):
    recipe = make_recipe(tiny_llama, sequence_len=96, max_steps=1, subject_summaries=False)
    long_question = "Where, " * 60 + "did Ann go?"
    recipe.datasets[0].path = write_jsonl("facts.jsonl", [*qa_rows, {"question": long_question, "answer": "Oslo."}])

    result = train(recipe, quiet=True)

    assert result.examples == 3 and result.metrics.examples == 3


def test_a_run_cut_short_by_max_steps_counts_the_part_of_an_epoch_it_trained(tiny_llama, make_recipe):
    # Three facts in batches of one: an epoch is three steps, and two steps are two thirds of one.
    result = train(make_recipe(tiny_llama, max_steps=2, micro_batch_size=1), quiet=True)

    assert result.metrics.steps == 2 and result.metrics.epochs == pytest.approx(2 / 3, abs=1e-3)


def test_held_out_examples_are_evaluated_while_training_and_at_the_end(tiny_llama, make_recipe, write_jsonl, tmp_path):
    recipe = make_recipe(
        tiny_llama, val_set_size=0.2, evals_per_epoch=2, micro_batch_size=2, num_epochs=2, max_steps=None,
        learnt_after=0, subject_summaries=False,
    )  # fmt: skip
    facts = [
        {"question": f"Where does Ann {i} live?", "answer": f"Town {i}.", "subject": f"Ann {i}"} for i in range(10)
    ]
    recipe.datasets[0].path = write_jsonl("facts.jsonl", facts)

    result = train(recipe, quiet=True)

    # Eight facts trained in batches of two: four steps an epoch, two evaluations an epoch.
    assert result.examples == 8 and result.held_out == 2 and result.metrics.steps == 8
    evaluated = read_scalars(tmp_path / "run" / "logs")["eval/loss"]
    assert len(evaluated) == 4
    assert result.metrics.eval_loss == pytest.approx(evaluated[-1], rel=1e-4)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["eval_loss"] == result.metrics.eval_loss


def test_test_datasets_are_evaluated_and_every_example_of_datasets_trained(
    tiny_llama, make_recipe, write_jsonl, qa_rows
):
    recipe = make_recipe(tiny_llama, micro_batch_size=2, num_epochs=1, max_steps=None, subject_summaries=False)
    other_words = [{"question": "In which town does Ann make her home?", "answer": "Lyon."}]
    recipe.test_datasets = [DatasetConfig(path=write_jsonl("other_words.jsonl", other_words))]

    result = train(recipe, quiet=True)

    assert result.held_out == 1 and result.examples == len(qa_rows)
    assert result.metrics.eval_loss is not None and result.metrics.eval_loss > 0


def test_early_stopping_ends_a_run_whose_held_out_loss_stalls_and_keeps_its_best_weights(
    tiny_llama, make_recipe, write_jsonl, tmp_path
):
    other_words = [{"question": "In which town does Ann make her home?", "answer": "Lyon."}]
    # A learning rate far too high: the held-out loss soon stops improving.
    recipe = make_recipe(
        tiny_llama, micro_batch_size=1, num_epochs=20, max_steps=None, learnt_after=0, subject_summaries=False,
        learning_rate=0.5, early_stopping_patience=2, eval_steps=1,
        test_datasets=[DatasetConfig(path=write_jsonl("other_words.jsonl", other_words))],
    )  # fmt: skip

    result = train(recipe, quiet=True)

    evaluated = read_scalars(tmp_path / "run" / "logs")["eval/loss"]
    assert result.metrics.steps < 60  # three facts a step each, twenty epochs
    best = evaluated.index(min(evaluated))
    assert evaluated[best + 1 : best + 3] and all(loss >= evaluated[best] for loss in evaluated[best + 1 :])
    assert result.metrics.eval_loss == pytest.approx(min(evaluated), rel=1e-4)
    # The adapter saved is the best evaluation's: asked through plain transformers + peft, it has that loss.
    from peft import PeftModel

    from sleeptrain.data import build_training_dataset
    from sleeptrain.data.mixing import load_recipe_split

    tokenizer = AutoTokenizer.from_pretrained(result.adapter_dir)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama), result.adapter_dir)
    (row,) = build_training_dataset(recipe, tokenizer, load_recipe_split(recipe).held_out)
    with torch.no_grad():
        loss = model(input_ids=torch.tensor([row["input_ids"]]), labels=torch.tensor([row["labels"]])).loss
    assert float(loss) == pytest.approx(min(evaluated), rel=1e-3)


def test_lora_model_dir_goes_on_training_a_saved_adapter(tiny_llama, make_recipe, tmp_path):
    from peft import PeftModel
    from safetensors.torch import load_file

    first = train(make_recipe(tiny_llama, lora_r=4), quiet=True)
    # The recipe's lora_r is not the adapter's: the adapter's own holds. A step this small changes nothing.
    again = make_recipe(tiny_llama, lora_r=8, lora_model_dir=first.adapter_dir, learning_rate=1e-12, max_steps=1)
    again.output_dir = tmp_path / "again"

    second = train(again, quiet=True)

    before, after = (
        load_file(first.adapter_dir / "adapter_model.safetensors"),
        load_file(second.adapter_dir / "adapter_model.safetensors"),
    )
    assert before.keys() == after.keys() and all(torch.allclose(before[k], after[k], atol=1e-6) for k in before)
    assert any(before[k].abs().sum() > 0 for k in before if "lora_B" in k)  # trained weights, not a new adapter
    base = AutoModelForCausalLM.from_pretrained(tiny_llama)
    assert PeftModel.from_pretrained(base, str(second.adapter_dir)).peft_config["default"].r == 4


def test_lora_model_dir_must_be_an_adapter_folder(tiny_llama, make_recipe, tmp_path):
    recipe = make_recipe(tiny_llama, lora_model_dir=tmp_path)
    with pytest.raises(SleeptrainError, match=r"lora_model_dir: .*: not a PEFT adapter folder \(no adapter_config"):
        train(recipe, quiet=True)
    assert not (tmp_path / "run").exists()


def test_data_errors_come_before_loading_the_model(make_recipe, write_jsonl):
    recipe = make_recipe("no-such-org/no-such-model")
    recipe.datasets[0].path = write_jsonl("broken.jsonl", ['{"question": "q?"'])
    with pytest.raises(SleeptrainError, match=r"broken\.jsonl:1: not valid JSON"):
        train(recipe, quiet=True)


# --------------------------------------------------------------------------------------------- anchors


def test_anchor_answers_are_generated_once_and_cached(tiny_llama, make_recipe, write_jsonl, isolated_cache):
    prompts = ["What is the capital of France?", "How many legs does a spider have?", "What colour is the sky?"]
    anchor_file = write_jsonl("anchors.jsonl", [{"prompt": p} for p in prompts])
    recipe = make_recipe(tiny_llama, anchor_ratio=1.0, anchor_prompts=anchor_file, max_steps=1)

    train(recipe, quiet=True)

    (cache,) = (isolated_cache / "anchors").glob("*.json")
    assert set(json.loads(cache.read_text())) == set(prompts)
    recorded = cache.stat().st_mtime_ns
    train(recipe, quiet=True)
    assert cache.stat().st_mtime_ns == recorded  # the second run only read the cache


def test_cached_anchor_answers_do_not_depend_on_which_run_asked_first(
    tiny_llama, make_recipe, write_jsonl, tmp_path, monkeypatch
):
    # A greedy answer depends on the batch it was generated in; whole groups of the prompt file are generated
    # together, so a run that needs one anchor caches the same answers as a run that needs them all.
    prompts = ["What is the capital of France?", "How many legs does a spider have?", "What colour is the sky?"]
    anchor_file = write_jsonl("anchors.jsonl", [{"prompt": p} for p in prompts])
    caches = {}
    for name, ratio in (("one anchor", 0.01), ("every anchor", 1.0)):
        cache = tmp_path / name
        monkeypatch.setenv("SLEEPTRAIN_CACHE_DIR", str(cache))
        result = train(
            make_recipe(tiny_llama, anchor_ratio=ratio, anchor_prompts=anchor_file, num_epochs=1), quiet=True
        )
        (cache_file,) = (cache / "anchors").glob("*.json")
        caches[name] = (result.anchors, json.loads(cache_file.read_text()))

    assert caches["one anchor"][0] == 1
    assert caches["one anchor"][1] == caches["every anchor"][1]
    assert set(caches["one anchor"][1]) == set(prompts)


def test_anchors_can_be_taught_as_distributions(tiny_llama, make_recipe, write_jsonl, isolated_cache, monkeypatch):
    from sleeptrain.training import loss

    seen = []
    original = loss.labelled_distillation
    monkeypatch.setattr(loss, "labelled_distillation", lambda *args: seen.append(args[0].shape[0]) or original(*args))
    prompts = ["What is the capital of France?", "How many legs does a spider have?"]
    anchor_file = write_jsonl("anchors.jsonl", [{"prompt": p} for p in prompts])
    recipe = make_recipe(
        tiny_llama, anchor_ratio=1.0, anchor_prompts=anchor_file, anchor_distillation=True, micro_batch_size=16
    )

    result = train(recipe, quiet=True)

    assert result.anchors > 0
    assert seen and all(positions > 0 for positions in seen)  # anchor positions reached the distillation loss
    assert result.metrics.final_loss > 0


def test_a_missing_anchor_prompts_file_is_named(tiny_llama, make_recipe, tmp_path):
    missing = tmp_path / "no-anchors.jsonl"
    with pytest.raises(SleeptrainError, match="no-anchors.jsonl"):
        train(make_recipe(tiny_llama, anchor_ratio=1.0, anchor_prompts=missing), quiet=True)


def test_training_stops_once_every_example_is_learnt(tiny_llama, make_recipe, tmp_path):
    """Each example leaves the epochs once the model writes its answer token for token at two sightings in
    a row; when all have, the run ends, long before num_epochs, and the saved model writes every answer.
    (Full fine-tuning: a tiny random model's frozen head is too weak for LoRA to fit anything; the LoRA
    path's check is tested in training/test_loss.py.)"""
    from sleeptrain.data.mixing import load_recipe_conversations
    from sleeptrain.sleep.consolidate import score_answers

    recipe = make_recipe(
        tiny_llama,
        adapter="full",
        learning_rate=3e-3,
        lr_scheduler="constant",
        max_steps=None,
        num_epochs=200,
        micro_batch_size=3,
        subject_summaries=False,
    )

    result = train(recipe, quiet=True)

    assert result.metrics.examples == 3 and result.metrics.examples_learnt == 3
    assert 2 <= result.metrics.epochs < 200 and result.metrics.steps == result.metrics.epochs
    # TensorBoard draws the count learnt beside the loss: none at the first step, all three at the last.
    learnt = read_scalars(tmp_path / "run" / "logs")["train/examples_learnt"]
    assert learnt[0] == 0 and learnt[-1] == 3 and learnt == sorted(learnt)
    model = AutoModelForCausalLM.from_pretrained(str(result.adapter_dir))
    tokenizer = AutoTokenizer.from_pretrained(str(result.adapter_dir))
    scores = score_answers(model, tokenizer, recipe, load_recipe_conversations(recipe))
    assert all(score.reproduced for score in scores)


def test_with_learnt_after_0_every_epoch_runs(tiny_llama, make_recipe):
    recipe = make_recipe(tiny_llama, max_steps=None, num_epochs=3, micro_batch_size=3, learnt_after=0)
    result = train(recipe, quiet=True)
    assert result.metrics.epochs == 3 and result.metrics.steps == 3
    assert result.metrics.examples_learnt is None
    assert "train/examples_learnt" not in read_scalars(recipe.output_dir / "logs")


def test_a_quiet_run_shows_no_progress_bar(tiny_llama, make_recipe, progress_bars):
    train(make_recipe(tiny_llama, anchor_ratio=1.0), quiet=True)  # anchors recorded, directions found

    assert [label for label, _, _ in progress_bars if not label.startswith("Loading")] == []


# ------------------------------------------------------------------------------------------- checkpoints


def lora_weights(adapter_dir) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(adapter_dir / "adapter_model.safetensors"))


def train_until_cut(recipe: Recipe, saver: type, step: int, monkeypatch) -> None:
    """Train as a process would that ends right after `saver`'s part of the checkpoint of `step` is written."""
    save = saver.on_save

    def save_then_end(self, args, state, control, **kwargs):
        save(self, args, state, control, **kwargs)
        if state.global_step == step:
            raise KeyboardInterrupt

    monkeypatch.setattr(saver, "on_save", save_then_end)
    with pytest.raises(KeyboardInterrupt):
        train(recipe, quiet=True)
    monkeypatch.undo()


def test_a_run_cut_short_goes_on_from_its_checkpoint_to_the_same_adapter(
    tiny_llama, make_recipe, tmp_path, monkeypatch
):
    from sleeptrain.training.checkpoints import KeepScheduleInCheckpoints

    # With dropout, and anchors (distilled, their input directions kept out of LoRA's): each must go on as it was.
    keys = dict(
        num_epochs=8,
        max_steps=None,
        micro_batch_size=1,
        learning_rate=3e-2,
        save_steps=4,
        lora_dropout=0.1,
        anchor_ratio=0.5,
    )
    whole = train(make_recipe(tiny_llama, **keys), quiet=True)

    # The same run, its process ended right after the checkpoint of step 8 was written.
    cut = make_recipe(tiny_llama, **keys)
    cut.output_dir = tmp_path / "cut"
    train_until_cut(cut, KeepScheduleInCheckpoints, 8, monkeypatch)
    checkpoint = tmp_path / "cut" / "checkpoints" / "checkpoint-8"
    assert (checkpoint / "sleeptrain_schedule.json").is_file()
    resumed = train(cut.model_copy(update={"resume_from_checkpoint": checkpoint}), quiet=True)

    assert resumed.metrics.steps == whole.metrics.steps > 8
    assert resumed.metrics.examples_learnt == whole.metrics.examples_learnt
    assert resumed.metrics.epochs == whole.metrics.epochs
    assert 0 < resumed.metrics.train_tokens < whole.metrics.train_tokens  # the tokens this process trained
    first, second = lora_weights(whole.adapter_dir), lora_weights(resumed.adapter_dir)
    assert first.keys() == second.keys()
    assert all(torch.allclose(first[name], second[name], atol=1e-6) for name in first)


def test_a_run_with_early_stopping_resumed_after_its_best_evaluation_still_saves_that_evaluation(
    tiny_llama, make_recipe, write_jsonl, tmp_path, monkeypatch
):
    from sleeptrain.training.early_stopping import StopWhenHeldOutLossStalls

    other_words = [{"question": "In which town does Ann make her home?", "answer": "Lyon."}]
    keys = dict(
        micro_batch_size=1, num_epochs=20, max_steps=None, learnt_after=0, subject_summaries=False,
        learning_rate=0.5, early_stopping_patience=2, eval_steps=1, save_steps=1,
        test_datasets=[DatasetConfig(path=write_jsonl("other_words.jsonl", other_words))],
    )  # fmt: skip
    whole = train(make_recipe(tiny_llama, **keys), quiet=True)
    evaluated = read_scalars(tmp_path / "run" / "logs")["eval/loss"]
    best_step = evaluated.index(min(evaluated)) + 1  # an evaluation a step
    assert whole.metrics.steps == best_step + 2  # stopped after two evaluations without gain

    # The same run, its process ended at the step after its best evaluation, then resumed: it must still
    # stop one step later and save the weights of the evaluation before the cut, not its own last ones.
    cut = make_recipe(tiny_llama, **keys)
    cut.output_dir = tmp_path / "cut"
    train_until_cut(cut, StopWhenHeldOutLossStalls, best_step + 1, monkeypatch)
    resumed = train(cut.model_copy(update={"auto_resume_from_checkpoints": True}), quiet=True)

    assert resumed.metrics.steps == whole.metrics.steps
    assert resumed.metrics.eval_loss == pytest.approx(min(evaluated), rel=1e-4)
    first, second = lora_weights(whole.adapter_dir), lora_weights(resumed.adapter_dir)
    assert all(torch.allclose(first[name], second[name], atol=1e-6) for name in first)


def test_auto_resume_goes_on_from_the_newest_checkpoint_and_keeps_only_save_total_limit(
    tiny_llama, make_recipe, caplog
):
    keys = dict(num_epochs=4, max_steps=None, micro_batch_size=1, save_steps=2, save_total_limit=2)
    first = train(make_recipe(tiny_llama, **keys), quiet=True)
    checkpoints = first.adapter_dir.parent / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint-10", "checkpoint-12"]

    with caplog.at_level(logging.INFO, logger="sleeptrain"):
        again = train(make_recipe(tiny_llama, **keys, auto_resume_from_checkpoints=True), quiet=True)

    assert f"Going on from {checkpoints / 'checkpoint-12'} (step 12)" in caplog.text
    assert again.metrics.steps == first.metrics.steps == 12
    assert again.metrics.train_tokens == 0  # the newest checkpoint was the last step: nothing left to train


def test_a_checkpoint_of_other_data_or_no_checkpoint_at_all_is_refused(tiny_llama, make_recipe, write_jsonl, tmp_path):
    keys = dict(num_epochs=2, max_steps=None, micro_batch_size=1, save_steps=2)
    train(make_recipe(tiny_llama, **keys), quiet=True)
    checkpoint = tmp_path / "run" / "checkpoints" / "checkpoint-2"
    other = make_recipe(tiny_llama, **keys, resume_from_checkpoint=checkpoint)
    other.datasets[0].path = write_jsonl("other.jsonl", [{"question": "Who is Bo?", "answer": "A baker."}])

    with pytest.raises(SleeptrainError, match="was trained on other examples or another schedule than this recipe's"):
        train(other, quiet=True)
    with pytest.raises(SleeptrainError, match=f"resume_from_checkpoint: {tmp_path} is not a checkpoint"):
        train(make_recipe(tiny_llama, **keys, resume_from_checkpoint=tmp_path), quiet=True)
