"""`lora_null_space`: LoRA's A matrices kept out of the input directions the anchors (general prompts) use, so
that those prompts pass the adapter nearly unchanged."""

from __future__ import annotations

import logging
import os

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from sleeptrain.config import DatasetConfig, Recipe
from sleeptrain.models import load_base_model
from sleeptrain.training import prepare_for_training
from sleeptrain.training.null_space import (
    AUTO_ENERGY,
    KEPT_FILES,
    add_upper_gram,
    input_second_moments,
    keep_lora_out_of_general_inputs,
    moment_bytes,
    null_space_energy,
    protected_directions,
)
from sleeptrain.workflows import train

ANCHOR_PROMPTS = [
    "What is the capital of France?",
    "How many legs does a spider have?",
    "What colour is the sky on a clear day?",
    "Hello, please tell me one two three.",
]


@pytest.fixture
def lora_model(tiny_llama, tmp_path):
    """The tiny Llama with the default recipe's LoRA layers, untrained, in fp32 (with `bf16: auto`, a CPU with
    AVX-512-BF16 would store its frozen weights for bf16 arithmetic, which only the training's autocast runs)."""
    recipe = Recipe(
        datasets=[DatasetConfig(path=tmp_path / "x.jsonl")], output_dir=tmp_path, base_model=tiny_llama, bf16=False
    )
    return prepare_for_training(recipe, load_base_model(recipe, use_bf16=False).model)


def _one_step_recipe(tiny_llama, facts, tmp_path, **keys) -> Recipe:
    return Recipe(
        datasets=[DatasetConfig(path=facts)],
        output_dir=tmp_path / "run",
        base_model=tiny_llama,
        bf16=False,
        max_steps=1,
        **keys,
    )


def test_the_protected_directions_hold_the_asked_share_of_the_energy():
    torch.manual_seed(0)
    rotation, _ = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64))
    moment = rotation @ torch.diag(torch.tensor([8.0, 1.0, 0.5, 0.5], dtype=torch.float64)) @ rotation.T

    assert protected_directions(moment, 0.75).shape == (4, 1)  # the first holds 8 of 10
    two = protected_directions(moment, 0.85)
    assert two.shape == (4, 2)
    # They are the top eigenvectors: projecting them out leaves the two smallest.
    rest = torch.eye(4) - two @ two.T
    assert torch.allclose(rest @ rotation[:, 2:].float(), rotation[:, 2:].float(), atol=1e-5)
    assert torch.allclose(rest @ rotation[:, :2].float(), torch.zeros(4, 2), atol=1e-5)


def test_the_gram_products_fill_the_upper_triangle_in_blocks_and_skip_the_blocks_below():
    rows = torch.randn(300, 1000)  # three blocks of columns: 0-332, 333-665, 666-999
    moment = torch.full((1000, 1000), 7.0)

    add_upper_gram(moment, rows, alpha=2.0)

    full = 7.0 + 2.0 * rows.T @ rows
    upper = torch.ones(1000, 1000, dtype=torch.bool).triu()
    assert torch.allclose(moment[upper], full[upper], rtol=1e-4, atol=1e-2)
    # The three blocks below the diagonal blocks: never computed (a third of the product).
    for below in (moment[333:666, :333], moment[666:, :333], moment[666:, 333:666]):
        assert torch.equal(below, torch.full_like(below, 7.0))


def test_moments_made_in_blocks_are_the_whole_products_and_exactly_symmetric(lora_model, tokenizer, monkeypatch):
    from sleeptrain.training import null_space

    batch = tokenizer(ANCHOR_PROMPTS, padding=True, return_tensors="pt")
    whole = input_second_moments(lora_model, [batch])  # the tiny model's 32-wide inputs: one block, rowsᵀ rows
    monkeypatch.setattr(null_space, "GRAM_BLOCK", 8)  # four blocks, six of their sixteen products

    blocked = input_second_moments(lora_model, [batch])

    for name, moment in blocked.items():
        assert torch.equal(moment, moment.T), name
        assert torch.allclose(moment, whole[name], rtol=1e-5, atol=1e-5), name


def test_layers_fed_one_tensor_share_one_moment_over_the_unpadded_positions_only(lora_model, tokenizer):
    short, long = (tokenizer(text)["input_ids"] for text in ("one two", "What is the capital of France?"))
    tokenizer.padding_side = "right"
    padded = tokenizer.pad({"input_ids": [short, long]}, return_tensors="pt")
    alone = [
        {"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, len(ids), dtype=torch.long)}
        for ids in (short, long)
    ]

    together = input_second_moments(lora_model, [padded])
    one_by_one = input_second_moments(lora_model, alone)

    layer = "base_model.model.model.layers.0"
    assert together[f"{layer}.self_attn.q_proj"] is together[f"{layer}.self_attn.v_proj"]
    assert together[f"{layer}.mlp.gate_proj"] is together[f"{layer}.mlp.up_proj"]
    assert together[f"{layer}.self_attn.q_proj"] is not together[f"{layer}.self_attn.o_proj"]
    for name, moment in together.items():
        assert torch.allclose(moment, one_by_one[name], rtol=1e-4, atol=1e-4), name


def test_under_fp16_autocast_the_moments_are_summed_past_fp16s_largest_number(lora_model, tokenizer):
    # A T4 finds the directions under the run's fp16 autocast. A real model's layer inputs reach tens in some
    # features, so a Σ x xᵀ over a batch's positions passes 65 504, fp16's largest number, within a few dozen
    # positions; here the norms' weights are raised so that the tiny model's inputs do the same.
    with torch.no_grad():
        for name, parameter in lora_model.named_parameters():
            if "norm" in name:
                parameter.mul_(60)
    batch = tokenizer(ANCHOR_PROMPTS, padding=True, return_tensors="pt")
    fp32 = input_second_moments(lora_model, [batch])
    assert max(float(moment.abs().max()) for moment in fp32.values()) > 65504

    with torch.autocast("cpu", dtype=torch.float16):
        fp16 = input_second_moments(lora_model, [batch])

    for name, moment in fp16.items():
        assert torch.isfinite(moment).all(), name
        assert float((moment - fp32[name]).norm() / fp32[name].norm()) < 0.01, name


def test_after_projection_no_lora_layer_reads_more_than_the_unprotected_share_of_the_inputs(lora_model, tokenizer):
    batch = tokenizer(
        [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False) for p in ANCHOR_PROMPTS],
        padding=True,
        return_tensors="pt",
    )
    moments = input_second_moments(lora_model, [batch])
    keep_out = keep_lora_out_of_general_inputs(lora_model, [batch], energy=0.99)

    def read_share(name: str, weight: torch.Tensor) -> float:
        """Σ ‖A x‖² over the inputs, against ‖A‖² Σ ‖x‖²: at most 1, and at most 1 − energy once projected."""
        moment, weight = moments[name], weight.detach()
        return float(torch.trace(weight @ moment @ weight.T) / (weight.norm() ** 2 * torch.trace(moment)))

    layers = {
        name: module.lora_A["default"].weight
        for name, module in lora_model.named_modules()
        if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {})
    }
    with torch.no_grad():
        for name, weight in layers.items():  # rows that read mostly the inputs' strongest directions
            weight.copy_(torch.randn_like(weight) @ moments[name])
    before = {name: read_share(name, weight) for name, weight in layers.items()}
    keep_out.project()
    after = {name: read_share(name, weight) for name, weight in layers.items()}

    assert len(layers) == 14  # seven linear layers in each of two decoder layers
    assert all(share <= 0.01 + 1e-6 for share in after.values()), after
    assert min(before.values()) > 0.05


def test_short_of_memory_it_takes_the_layers_in_several_passes_and_finds_the_same_directions(
    lora_model, tokenizer, caplog
):
    batch = tokenizer(ANCHOR_PROMPTS, padding=True, return_tensors="pt")

    at_once = keep_lora_out_of_general_inputs(lora_model, [batch], energy=0.9)
    with caplog.at_level(logging.INFO, logger="sleeptrain"):
        # Room for no decoder layer's matrices at all: one pass per decoder layer, the least it can do.
        layer_by_layer = keep_lora_out_of_general_inputs(lora_model, iter([batch]), energy=0.9, memory=1)

    assert "(2 passes over the anchors, to fit memory)" in caplog.text
    assert len(layer_by_layer.pairs) == len(at_once.pairs) == 14
    for (weight, one), (same_weight, other) in zip(at_once.pairs, layer_by_layer.pairs, strict=True):
        assert weight is same_weight
        one, other = one.float(), other.float()
        assert torch.allclose(one @ one.T, other @ other.T, atol=2e-3)  # the same subspace, whatever the signs


def test_the_directions_found_once_are_read_back_from_the_cache_and_a_torn_file_is_found_again(
    lora_model, tokenizer, tmp_path, caplog
):
    batch = tokenizer(ANCHOR_PROMPTS, padding=True, return_tensors="pt")
    cache = tmp_path / "null_space" / "directions.pt"

    found = keep_lora_out_of_general_inputs(lora_model, [batch], energy=0.9, cache=cache)
    with caplog.at_level(logging.INFO, logger="sleeptrain"):
        read_back = keep_lora_out_of_general_inputs(lora_model, [batch], energy=0.9, cache=cache)
    assert "directions for 14 layers loaded from" in caplog.text
    for (_, one), (_, other) in zip(found.pairs, read_back.pairs, strict=True):
        assert torch.equal(one, other)
    # q, k and v (gate and up) still share one matrix once read back.
    assert len({id(d) for _, d in read_back.pairs}) == len({id(d) for _, d in found.pairs}) == 8

    cache.write_bytes(b"torn")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="sleeptrain"):
        again = keep_lora_out_of_general_inputs(lora_model, [batch], energy=0.9, cache=cache)
    assert "Ignoring the unreadable cache" in caplog.text and "input directions protected" in caplog.text
    assert len(again.pairs) == 14 and torch.load(cache, weights_only=True)["groups"]


def test_the_directions_files_kept_are_the_most_recently_used(lora_model, tokenizer, tmp_path):
    # The quickstart's file, used by every quickstart, outlives files written since for other anchors.
    batch = tokenizer(ANCHOR_PROMPTS, padding=True, return_tensors="pt")
    folder = tmp_path / "null_space"
    files = [folder / f"{index}.pt" for index in range(KEPT_FILES + 1)]
    for index, path in enumerate(files[:-1]):
        keep_lora_out_of_general_inputs(lora_model, [batch], energy=0.9, cache=path)
        os.utime(path, (index, index))  # written in this order, long ago (whatever the clock's resolution)

    keep_lora_out_of_general_inputs(lora_model, [batch], energy=0.9, cache=files[0])  # used again
    keep_lora_out_of_general_inputs(lora_model, [batch], energy=0.9, cache=files[-1])  # one more written

    assert sorted(path.name for path in folder.glob("*.pt")) == sorted(path.name for path in files if path != files[1])


def test_the_directions_are_held_and_cached_in_half_precision_once_per_shared_input(lora_model, tokenizer, tmp_path):
    batch = tokenizer(ANCHOR_PROMPTS, padding=True, return_tensors="pt")
    cache = tmp_path / "directions.pt"

    keep_out = keep_lora_out_of_general_inputs(lora_model, [batch], energy=0.9, cache=cache)

    held = {id(d): d for _, d in keep_out.pairs}
    assert len(held) == 8  # per decoder layer: q/k/v, o, gate/up, down
    assert {d.dtype for d in held.values()} == {torch.float16}
    assert {g.dtype for g in torch.load(cache, weights_only=True)["groups"]} == {torch.float16}
    for directions in held.values():  # still orthonormal columns, to fp16's precision
        gram = directions.float().T @ directions.float()
        assert torch.allclose(gram, torch.eye(gram.shape[0]), atol=2e-3)


def test_a_cache_file_of_an_earlier_version_in_fp32_is_read_back_in_half_precision(lora_model, tokenizer, tmp_path):
    batch = tokenizer(ANCHOR_PROMPTS, padding=True, return_tensors="pt")
    cache = tmp_path / "directions.pt"
    found = keep_lora_out_of_general_inputs(lora_model, [batch], energy=0.9, cache=cache)
    saved = torch.load(cache, weights_only=True)
    torch.save({**saved, "groups": [group.float() for group in saved["groups"]]}, cache)  # as sessions before fp16

    read_back = keep_lora_out_of_general_inputs(lora_model, [batch], energy=0.9, cache=cache)

    assert {d.dtype for _, d in read_back.pairs} == {torch.float16}
    for (_, one), (_, other) in zip(found.pairs, read_back.pairs, strict=True):
        assert torch.equal(one, other)


def test_finding_the_directions_shows_its_progress_and_reading_them_back_shows_none(
    lora_model, tokenizer, tmp_path, progress_bars
):
    batch = tokenizer(ANCHOR_PROMPTS, padding=True, return_tensors="pt")
    cache = tmp_path / "null_space" / "directions.pt"

    keep_lora_out_of_general_inputs(lora_model, [batch, batch], energy=0.9, cache=cache, progress=True)
    # Two batches of anchors, then one eigendecomposition per distinct input: q/k/v, o, gate/up and down in
    # each of the two decoder layers.
    assert progress_bars == [
        ("lora_null_space: the anchors' inputs", 2, 2),
        ("lora_null_space: directions", 8, 8),
    ]
    keep_lora_out_of_general_inputs(lora_model, [batch], energy=0.9, cache=cache, progress=True)
    assert len(progress_bars) == 2


@pytest.fixture
def anchored_run(tiny_llama, tmp_path, write_jsonl, qa_rows, isolated_cache):
    facts = write_jsonl("facts.jsonl", qa_rows)
    anchors = write_jsonl("anchors.jsonl", [{"prompt": p} for p in ANCHOR_PROMPTS])

    def run(name: str, **keys) -> PeftModel:
        recipe = Recipe(
            datasets=[DatasetConfig(path=facts)],
            output_dir=tmp_path / name,
            base_model=tiny_llama,
            lora_r=4,
            learning_rate=1e-2,
            learnt_after=0,
            question_variants=1,
            anchor_ratio=1.0,
            anchor_prompts=anchors,
            **{"bf16": False, "num_epochs": 4, **keys},
        )
        result = train(recipe, quiet=True)
        base = AutoModelForCausalLM.from_pretrained(tiny_llama)
        return PeftModel.from_pretrained(base, str(result.adapter_dir)).eval()

    return run


def _logit_change(model: PeftModel, tokenizer, prompts: list[str]) -> float:
    """Mean absolute change of the next-token logits along the prompts, adapter on against off."""
    changes = []
    for prompt in prompts:
        text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False)
        ids = tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            on = model(**ids).logits
            with model.disable_adapter():
                off = model(**ids).logits
        changes.append((on - off).abs().mean())
    return float(torch.stack(changes).mean())


def test_a_trained_adapter_reads_nothing_of_the_anchors_inputs(anchored_run, tiny_llama, qa_rows):
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    free = anchored_run("free", lora_null_space=0)
    kept_out = anchored_run("kept-out", lora_null_space=0.999)

    # The saved adapter is a plain PEFT LoRA that learnt something...
    questions = [row["question"] for row in qa_rows]
    assert _logit_change(kept_out, tokenizer, questions) > 0

    # ...and moves the general prompts it was kept from less, relative to the facts, than an adapter without it.
    def ratio(model: PeftModel) -> float:
        return _logit_change(model, tokenizer, ANCHOR_PROMPTS) / _logit_change(model, tokenizer, questions)

    assert ratio(kept_out) < 0.8 * ratio(free)


def test_a_second_run_on_the_same_base_model_and_anchors_reads_the_directions_from_the_cache(
    anchored_run, isolated_cache, caplog
):
    anchored_run("first", num_epochs=1, lora_null_space=0.99)
    assert len(list((isolated_cache / "null_space").glob("*.pt"))) == 1
    with caplog.at_level(logging.INFO, logger="sleeptrain"):
        anchored_run("second", num_epochs=1, lora_null_space=0.99)
    assert "directions for 14 layers loaded from" in caplog.text
    assert "input directions protected per layer" not in caplog.text


def test_a_bf16_run_reads_the_anchors_under_the_autocast_it_trains_with(anchored_run, caplog):
    # bf16 LoRA keeps the frozen weights and embeddings in bf16 and the norms in fp32: only the training's
    # autocast reconciles them, so the pass that finds the directions must run under it too (first seen on a GPU).
    with caplog.at_level(logging.INFO, logger="sleeptrain"):
        anchored_run("bf16", bf16=True, num_epochs=1, lora_null_space=0.99)
    assert "input directions protected per layer" in caplog.text


def test_a_qlora_run_keeps_its_adapter_out_of_the_anchors_inputs_too(anchored_run, caplog):
    with caplog.at_level(logging.INFO, logger="sleeptrain"):
        anchored_run("qlora", adapter="qlora", num_epochs=1, lora_null_space=0.99)
    assert "input directions protected per layer" in caplog.text


def test_a_run_without_anchors_says_it_has_nothing_to_keep_out_of(tiny_llama, tmp_path, write_jsonl, qa_rows, caplog):
    recipe = _one_step_recipe(
        tiny_llama, write_jsonl("facts.jsonl", qa_rows), tmp_path, anchor_ratio=0, lora_null_space=0.99
    )
    with caplog.at_level(logging.INFO, logger="sleeptrain"):
        train(recipe, quiet=True)
    assert "lora_null_space: no anchors in this run" in caplog.text


def test_a_run_without_the_epoch_schedule_says_the_key_is_for_train_only(
    tiny_llama, tmp_path, write_jsonl, qa_rows, caplog
):
    """Sleep trains a dataset built without the schedule's rows (no anchor rows to read): the log says so
    instead of claiming the run has no anchors."""
    from sleeptrain.data.mixing import build_training_dataset, load_recipe_conversations
    from sleeptrain.training import train_model

    recipe = _one_step_recipe(tiny_llama, write_jsonl("facts.jsonl", qa_rows), tmp_path, lora_null_space=0.98)
    loaded = load_base_model(recipe, use_bf16=False)
    dataset = build_training_dataset(recipe, loaded.tokenizer, load_recipe_conversations(recipe))
    model = prepare_for_training(recipe, loaded.model)
    with caplog.at_level(logging.INFO, logger="sleeptrain"):
        train_model(recipe, model, loaded.tokenizer, dataset, False, tmp_path / "run" / "adapter", quiet=True)
    assert "lora_null_space: applies to `sleeptrain train` only" in caplog.text


# ---------------------------------------------------------------------------------------------------- auto


def test_auto_keeps_a_small_models_lora_out_and_a_set_value_is_taken_as_it_is(lora_model):
    assert moment_bytes(lora_model) < 1 << 20  # the tiny Llama
    assert null_space_energy("auto", lora_model) == AUTO_ENERGY == 0.9
    assert null_space_energy(0.5, lora_model) == 0.5
    assert null_space_energy(0, lora_model) == 0.0


def test_auto_leaves_a_half_billion_parameter_model_alone():
    """A Qwen2.5-0.5B-shaped model (no weights: the meta device) would need ~2.7 GB of second moments."""
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2Config

    config = Qwen2Config(
        hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2
    )
    with torch.device("meta"):
        model = get_peft_model(AutoModelForCausalLM.from_config(config), LoraConfig(r=16, target_modules="all-linear"))
    assert 2.5e9 < moment_bytes(model) < 3e9
    assert null_space_energy("auto", model) == 0.0
    assert null_space_energy(0.95, model) == 0.95


def test_the_defaults_keep_lora_out_of_the_anchors_inputs(anchored_run, caplog):
    with caplog.at_level(logging.INFO, logger="sleeptrain"):
        anchored_run("defaults", num_epochs=1)
    assert f"lora_null_space {AUTO_ENERGY}: " in caplog.text and "input directions protected per layer" in caplog.text


def test_auto_says_nothing_where_it_does_not_apply(tiny_llama, tmp_path, write_jsonl, qa_rows, caplog):
    recipe = _one_step_recipe(tiny_llama, write_jsonl("facts.jsonl", qa_rows), tmp_path, anchor_ratio=0)
    with caplog.at_level(logging.INFO, logger="sleeptrain"):
        train(recipe, quiet=True)
    assert "lora_null_space" not in caplog.text


def test_the_teacher_states_a_run_caches_do_not_depend_on_the_directions_pass(anchored_run, tmp_path, monkeypatch):
    # Whether or not a run looks for the anchors' input directions, it caches the same teacher states: a later
    # run reads them, so they must not depend on how the run that wrote them batched its anchors.
    def teacher_states(cache: str, **keys) -> dict:
        monkeypatch.setenv("SLEEPTRAIN_CACHE_DIR", str(tmp_path / cache))
        anchored_run(cache, num_epochs=1, **keys)
        (states_file,) = (tmp_path / cache / "teacher").glob("*.pt")
        saved = torch.load(states_file, weights_only=True)
        return {tuple(key): value for key, value in zip(saved["keys"], saved["values"], strict=True)}

    without_directions = teacher_states("no-directions", lora_null_space=0)
    with_directions = teacher_states("directions", lora_null_space=0.99)

    assert len(without_directions) >= 2  # the anchors the tiny model answered (an empty answer is no anchor)
    assert with_directions.keys() == without_directions.keys()
    for key, states in without_directions.items():
        assert torch.equal(with_directions[key], states)


def test_the_system_prompt_every_anchor_starts_with_runs_once_and_counts_once_per_anchor(lora_model, tokenizer):
    from sleeptrain.training.loss import IGNORE_INDEX, shared_prefix_length

    chats = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": p}, {"role": "assistant", "content": "An answer."}], tokenize=False
        )
        for p in ANCHOR_PROMPTS
    ]
    rows = [tokenizer(chat, add_special_tokens=False)["input_ids"] for chat in chats]
    answer = len(tokenizer("An answer.<|im_end|>\n", add_special_tokens=False)["input_ids"])
    width = max(map(len, rows))

    def batch_of(chosen: list[list[int]]) -> dict[str, torch.Tensor]:
        size = max(map(len, chosen))
        pad = tokenizer.pad_token_id
        return {
            "input_ids": torch.tensor([r + [pad] * (size - len(r)) for r in chosen]),
            "attention_mask": torch.tensor([[1] * len(r) + [0] * (size - len(r)) for r in chosen]),
            "labels": torch.tensor(
                [[IGNORE_INDEX] * (len(r) - answer) + r[-answer:] + [IGNORE_INDEX] * (size - len(r)) for r in chosen]
            ),
        }

    together = batch_of(rows)
    prefix = shared_prefix_length(together["input_ids"], together["attention_mask"], None)
    assert prefix >= 8
    assert together["input_ids"].shape[1] == width

    embedded = []
    embeddings = lora_model.get_input_embeddings()
    handle = embeddings.register_forward_pre_hook(lambda module, args: embedded.append(args[0].numel()))
    try:
        shared = input_second_moments(lora_model, [together])
    finally:
        handle.remove()
    assert embedded == [prefix, len(rows) * (width - prefix)]  # the prefix once, then the rest of every row
    alone = input_second_moments(lora_model, [batch_of([r]) for r in rows])

    for name, moment in shared.items():
        assert torch.allclose(moment, alone[name], rtol=1e-4, atol=1e-4), name
