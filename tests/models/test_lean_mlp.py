"""Gated MLPs that keep two tensors for the backward pass instead of four: the same loss and the very same
gradients, with less kept."""

from __future__ import annotations

import torch

from sleeptrain.config import DatasetConfig, Recipe
from sleeptrain.models import load_base_model, store_frozen_weights_in_bf16
from sleeptrain.models.lean_mlp import keep_fewer_mlp_activations


def _lora_model(folder: str):
    from peft import LoraConfig, get_peft_model

    recipe = Recipe(base_model=folder, datasets=[DatasetConfig(path="facts.jsonl")], output_dir="out")
    model = load_base_model(recipe, use_bf16=True).model
    store_frozen_weights_in_bf16(model)
    torch.manual_seed(0)
    return get_peft_model(model, LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))


def _step(model, lean: bool) -> tuple[torch.Tensor, list[torch.Tensor], int]:
    """One bf16-autocast forward and backward: the loss, LoRA's gradients, and the bytes kept for the backward
    pass (weights aside)."""
    assert keep_fewer_mlp_activations(model, enabled=lean)
    model.zero_grad()
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kept: dict[int, int] = {}

    def pack(tensor):
        if isinstance(tensor, torch.Tensor) and tensor.untyped_storage().data_ptr() not in weights:
            kept[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    ids = torch.arange(2, 26).reshape(2, 12)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters() if p.requires_grad], sum(kept.values())


def test_the_same_loss_and_gradients_bit_for_bit_with_less_kept(tiny_model_dir):
    model = _lora_model(tiny_model_dir)

    loss, grads, kept = _step(model, lean=True)
    loss_before, grads_before, kept_before = _step(model, lean=False)

    assert torch.equal(loss, loss_before)
    assert all(torch.equal(g, g_before) for g, g_before in zip(grads, grads_before, strict=True))
    # silu(gate) and the product no longer kept: two bf16 tensors of the intermediate size, per token and
    # layer (2 layers, 24 tokens). (Inside the down projection the MLP's own hooks take over from this one,
    # so the little kept there, LoRA's r-sized input to B among it, is not counted on the lean side.)
    intermediate = model.config.intermediate_size
    assert kept_before - kept >= 2 * 2 * 24 * intermediate * 2 * 0.9


def test_without_gradients_the_mlp_runs_as_before(tiny_llama):
    model = _lora_model(tiny_llama)
    keep_fewer_mlp_activations(model)
    mlp = model.base_model.model.model.layers[0].mlp
    x = torch.randn(1, 3, model.config.hidden_size)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        lean = mlp(x)
        keep_fewer_mlp_activations(model, enabled=False)
        plain = mlp(x)
    assert torch.equal(lean, plain)


def test_installed_once_however_often_the_model_is_readied(tiny_llama):
    model = _lora_model(tiny_llama)
    keep_fewer_mlp_activations(model)
    forward = model.base_model.model.model.layers[0].mlp.forward
    keep_fewer_mlp_activations(model)
    assert model.base_model.model.model.layers[0].mlp.forward is forward


def test_a_model_without_gated_mlps_is_left_alone():
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50))
    assert not keep_fewer_mlp_activations(model)
