"""The decoder layers' norms under autocast: one low-precision copy of the normed hidden states for the
linears they feed (the same forward pass), and no fp32 copy of the residual stream kept for the backward pass
(nearly the same gradients)."""

from __future__ import annotations

import torch

from sleeptrain.config import DatasetConfig, Recipe
from sleeptrain.models import keep_lora_inputs_bf16, load_base_model
from sleeptrain.models.lean_norm import _NormToLowPrecision, norms_feed_low_precision
from sleeptrain.training.run import ready_base_for_adapter


def _base_model(folder: str):
    # bf16 named, not "auto": these tests are about the bf16 path, whatever this CPU does natively.
    recipe = Recipe(base_model=folder, datasets=[DatasetConfig(path="facts.jsonl")], output_dir="out", bf16=True)
    return ready_base_for_adapter(recipe, load_base_model(recipe, use_bf16=True).model)


def _lora_model(folder: str):
    from peft import LoraConfig, get_peft_model

    model = _base_model(folder)
    torch.manual_seed(0)
    model = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))
    keep_lora_inputs_bf16(model)
    return model


def _step(model, lean: bool) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """One bf16-autocast forward and backward: the loss, LoRA's gradients (flat), the bytes kept for the
    backward pass (weights aside), and how many fp32 hidden-sized tensors (the residual stream) were kept."""
    assert norms_feed_low_precision(model, enabled=lean)
    model.zero_grad()
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kept: dict[int, int] = {}
    residual: set[int] = set()

    def pack(tensor):
        storage = tensor.untyped_storage().data_ptr()
        if storage not in weights:
            kept[storage] = tensor.untyped_storage().nbytes()
            if tensor.dtype == torch.float32 and tensor.shape[-1:] == (model.config.hidden_size,):
                residual.add(storage)
        return tensor

    ids = torch.arange(2, 26).reshape(2, 12)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.requires_grad])
    return loss.detach(), grads, sum(kept.values()), len(residual)


def test_the_same_forward_nearly_the_same_gradients_and_less_kept(tiny_model_dir):
    model = _lora_model(tiny_model_dir)

    loss, grads, kept, residual = _step(model, lean=True)
    loss_before, grads_before, kept_before, residual_before = _step(model, lean=False)

    # The linears get the very values autocast's own casts would give them.
    assert torch.equal(loss, loss_before)
    # What moves the gradients: the one copy's gradient sums its linears' contributions in bf16, and the norm's
    # backward pass reads the normed values back in bf16. Both are small next to what bf16 autocast itself
    # moves (on the default model 0.6 % and 1.0 %, against 3.4 %).
    assert (grads - grads_before).norm() < 0.03 * grads_before.norm()
    # The residual stream is kept only where the final norm (which feeds the head, not a layer's linears)
    # takes it; the layers' norms kept it too before.
    assert residual == 1 < residual_before
    # With separate q, k, v (and gate, up), the extra bf16 copies of the normed input are gone as well: at
    # least two per layer (2 layers, 24 tokens). Phi3's fused qkv and gate_up made one copy each already.
    config = model.config
    extra_copies = 0 if config.model_type == "phi3" else 2 * 2 * 24 * config.hidden_size * 2
    assert kept_before - kept >= extra_copies + (residual_before - 1) * 24 * config.hidden_size * 4


def test_the_backward_pass_is_the_derivative_of_rmsnorm():
    # Kept in fp32 (no rounding), the normed values read back from the output give autograd's gradient.
    torch.manual_seed(1)
    x = torch.randn(2, 5, 16, requires_grad=True)
    weight = torch.rand(16) + 0.5
    grad = torch.randn(2, 5, 16)

    plain = weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6))
    (expected,) = torch.autograd.grad(plain, x, grad)
    (ours,) = torch.autograd.grad(_NormToLowPrecision.apply(x, weight, 1e-6, torch.float32), x, grad)

    assert torch.allclose(ours, expected, atol=1e-5)


def test_the_norms_cast_only_under_autocast_to_its_dtype(tiny_llama):
    model = _base_model(tiny_llama)
    norm = model.model.layers[0].input_layernorm
    hidden = torch.randn(1, 3, model.config.hidden_size)

    assert norm(hidden).dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert norm(hidden).dtype == torch.bfloat16
        # The final norm feeds the LM head and the residual stream is not a norm's output: both stay fp32.
        assert model.model.norm(hidden).dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.float16):
        assert norm(hidden).dtype == torch.float16


def test_a_norm_being_trained_keeps_its_input_and_gets_its_gradient(tiny_llama):
    # Full fine-tuning trains the norms: their weight's gradient needs the fp32 input, as autograd keeps it.
    model = _base_model(tiny_llama)
    norm = model.model.layers[0].input_layernorm
    norm.weight.requires_grad_(True)
    hidden = torch.randn(1, 3, model.config.hidden_size, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        norm(hidden).float().square().sum().backward()
    assert norm.weight.grad is not None and bool(norm.weight.grad.abs().sum() > 0)


def test_installed_once_however_often_the_model_is_readied(tiny_llama):
    model = _base_model(tiny_llama)
    forward = model.model.layers[0].input_layernorm.forward
    norms_feed_low_precision(model)  # as every sleep readies its base model again
    assert model.model.layers[0].input_layernorm.forward is forward


def test_a_model_without_such_norms_is_left_alone():
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50))
    assert not norms_feed_low_precision(model)


def test_a_model_whose_weights_are_not_loaded_yet_keeps_its_norms_inputs(tiny_llama):
    # FSDP's ranks but the first may hold the weights on the meta device until they are sharded out.
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(tiny_llama))
    assert norms_feed_low_precision(model)
    assert not model.model.layers[0].input_layernorm._can_keep_no_input


def test_the_norms_stay_lean_once_trainer_puts_the_model_in_training_mode(tiny_model_dir):
    # transformers 5.25 loads models with hub kernels on and re-applies them at every train()/eval(), which
    # put the norms' own forward back; the base model is loaded with them off.
    model = _lora_model(tiny_model_dir)
    model.eval()
    model.train()

    _, _, _, residual = _step(model, lean=True)

    assert residual == 1  # the final norm's only, as before train(): the layers' norms keep none
