"""bf16 storage under fp32 arithmetic (a LoRA run on a CPU without native bf16): the frozen weights are kept
in bf16 and each product casts its weight back to fp32, so a run computes exactly what fp32 arithmetic on the
bf16-rounded weights computes, in about half the weights' memory."""

from __future__ import annotations

import copy

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from sleeptrain.models import bf16_storage, generate_answers, store_frozen_weights_in_bf16
from sleeptrain.models.bf16_storage import compute_linears_from_bf16, computes_linears_from_bf16, weight_as
from sleeptrain.models.loading import inference_context


def rounded_through_bf16(model):
    """The same model in fp32, its embeddings and every linear weight rounded to bf16 and back: what storage
    in bf16 computes."""
    reference = copy.deepcopy(model)
    for module in reference.modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.Embedding)):
            module.weight.data = module.weight.data.bfloat16().float()
    return reference


def with_lora(model):
    torch.manual_seed(0)
    peft = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"))
    for name, parameter in peft.named_parameters():
        if "lora_B" in name:  # zero at the start: give the adapter something to say
            torch.nn.init.normal_(parameter, std=0.02)
    return peft


@pytest.mark.parametrize("tiny_model_dir", ["llama", "qwen2", "phi3"], indirect=True)
def test_a_step_computes_what_fp32_on_bf16_rounded_weights_computes(tiny_model_dir):
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    reference = with_lora(rounded_through_bf16(base))
    store_frozen_weights_in_bf16(base, fp32_arithmetic=True)  # as a LoRA run readies it (training/run.py)
    stored = with_lora(base)
    # The same adapter in both (PEFT draws LoRA's A matrices in the base layer's dtype, then widens them).
    stored.load_state_dict({n: p for n, p in reference.state_dict().items() if "lora_" in n}, strict=False)
    ids = torch.randint(0, base.config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(1))

    losses = {}
    for name, model in (("stored", stored), ("reference", reference)):
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        losses[name] = loss

    assert torch.allclose(losses["stored"], losses["reference"], rtol=1e-5, atol=1e-6)
    grads = {name: p.grad for name, p in stored.named_parameters() if p.requires_grad}
    for name, parameter in reference.named_parameters():
        if parameter.requires_grad:
            assert torch.allclose(grads[name], parameter.grad, rtol=1e-4, atol=1e-6), name
    frozen = {p.dtype for p in stored.parameters() if not p.requires_grad and p.dim() == 2}
    assert frozen == {torch.bfloat16}  # every frozen matrix: the linears, the embeddings, the head
    assert {p.dtype for p in stored.parameters() if p.requires_grad} == {torch.float32}


def test_such_a_model_answers_in_fp32_without_autocast(tiny_llama):
    from transformers import AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    compute_linears_from_bf16(model)
    assert computes_linears_from_bf16(model)

    with inference_context(model):
        assert not torch.is_autocast_enabled("cpu")  # emulated bf16 products are what this storage avoids
        logits = model(input_ids=torch.tensor([[1, 2, 3]])).logits
    assert logits.dtype == torch.float32
    answers = generate_answers(model, AutoTokenizer.from_pretrained(tiny_llama), ["Hello?"], max_new_tokens=4)
    assert len(answers) == 1 and isinstance(answers[0], str)


def test_storing_twice_changes_nothing(tiny_llama):
    model = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    compute_linears_from_bf16(model)
    before = {name: p.clone() for name, p in model.named_parameters()}
    compute_linears_from_bf16(model)
    assert all(torch.equal(before[name], p) for name, p in model.named_parameters())
    assert not computes_linears_from_bf16(AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32))


def test_frozen_weights_of_one_shape_are_cast_into_one_buffer_and_trained_ones_are_not():
    first, second = torch.randn(6, 4).bfloat16(), torch.randn(6, 4).bfloat16()

    one = weight_as(first, torch.float32)
    assert one.dtype == torch.float32 and torch.equal(one, first.float())
    pointer = one.data_ptr()
    other = weight_as(second, torch.float32)
    assert other.data_ptr() == pointer and torch.equal(other, second.float())  # the same memory, refilled

    trained = torch.randn(6, 4, dtype=torch.bfloat16, requires_grad=True)
    cast = weight_as(trained, torch.float32)
    assert cast.data_ptr() != pointer and cast.requires_grad  # an ordinary cast, on the autograd graph
    assert weight_as(one, torch.float32) is one  # already in that precision: no copy


def test_a_shape_first_cast_under_inference_mode_still_trains(monkeypatch):
    # A new process whose first products are answers (a sleep's dreams), then training steps.
    monkeypatch.setattr(bf16_storage, "_CAST_BUFFERS", {})
    layer = torch.nn.Linear(4, 6, bias=False).requires_grad_(False)  # frozen, as LoRA's base weights are
    compute_linears_from_bf16(layer)
    x = torch.randn(3, 4)
    with torch.inference_mode():
        answered = layer(x)

    trained_input = x.clone().requires_grad_()
    out = layer(trained_input)
    out.sum().backward()

    assert torch.equal(out.detach(), answered)
    assert torch.allclose(trained_input.grad, layer.weight.float().sum(0).expand(3, 4))
