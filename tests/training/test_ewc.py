"""EWC: the empirical Fisher on LoRA weights, its accumulation and storage, and the penalty's gradient
added by hooks, checked against autograd on the penalty written out."""

from __future__ import annotations

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from sleeptrain.training.ewc import (
    accumulate,
    attach_ewc,
    empirical_fisher,
    ewc_penalty,
    load_fisher,
    save_fisher,
    trainable_parameters,
)


def lora_model(model_dir):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    # LoRA's B starts at zero, which makes A's gradients zero; move B so that every weight has a gradient.
    for name, param in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.05)
    return model


def batches(tokenizer, count=3):
    texts = ["Alice likes green apples.", "Bob likes red boats.", "Carol likes blue kites."][:count]
    out = []
    for text in texts:
        ids = torch.tensor([tokenizer(text)["input_ids"]])
        out.append({"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()})
    return out


def test_the_fisher_is_the_sum_of_squared_per_example_gradients(tiny_llama, tokenizer):
    model = lora_model(tiny_llama)
    data = batches(tokenizer)

    fisher = empirical_fisher(model, data)

    params = trainable_parameters(model)
    assert all(p.grad is None for p in params.values())  # it leaves no gradients behind
    assert set(fisher) == set(params) | {"__examples__"} and fisher["__examples__"].item() == 3
    expected = {name: torch.zeros_like(p) for name, p in params.items()}
    for batch in data:
        model.zero_grad()
        model(**batch).loss.backward()
        for name, p in params.items():
            expected[name] += p.grad**2
    for name in params:
        torch.testing.assert_close(fisher[name], expected[name])


def test_fishers_accumulate_and_round_trip_through_a_file(tiny_llama, tokenizer, tmp_path):
    model = lora_model(tiny_llama)
    one = empirical_fisher(model, batches(tokenizer, 1))
    two = empirical_fisher(model, batches(tokenizer, 2))
    total = accumulate(one, two)
    assert total["__examples__"].item() == 3
    assert accumulate(None, one) is one

    save_fisher(total, tmp_path)
    loaded = load_fisher(tmp_path)
    assert set(loaded) == set(total)
    assert all(torch.equal(loaded[n], total[n]) for n in total)
    assert load_fisher(tmp_path / "nowhere") is None


def test_the_hooks_add_exactly_the_penalty_gradient(tiny_llama, tokenizer):
    model = lora_model(tiny_llama)
    fisher = empirical_fisher(model, batches(tokenizer))
    params = trainable_parameters(model)
    anchors = {name: p.detach().clone() for name, p in params.items()}
    handles = attach_ewc(model, fisher, strength=3.0)
    with torch.no_grad():
        for p in params.values():
            p.add_(torch.randn_like(p) * 0.01)  # as if some training moved them

    batch = batches(tokenizer, 1)[0]
    model.zero_grad()
    model(**batch).loss.backward()
    hooked = {name: p.grad.clone() for name, p in params.items()}
    for handle in handles:
        handle.remove()

    model.zero_grad()
    mean = torch.cat([fisher[n].flatten() for n in params]).mean()
    penalty = sum((fisher[n] / mean * (p - anchors[n]) ** 2).sum() for n, p in params.items()) * 3.0 / 2
    (model(**batch).loss + penalty).backward()
    for name, p in params.items():
        torch.testing.assert_close(hooked[name], p.grad, rtol=1e-4, atol=1e-7)
    assert abs(ewc_penalty(model, fisher, anchors, 3.0) - penalty.item()) <= 1e-4 * penalty.item()


def test_a_strong_penalty_holds_the_important_weights_where_they_were(tiny_llama, tokenizer):
    moved = {}
    for strength in (0.0, 100.0):
        model = lora_model(tiny_llama)
        fisher = empirical_fisher(model, batches(tokenizer))
        params = trainable_parameters(model)
        anchors = {name: p.detach().clone() for name, p in params.items()}
        handles = attach_ewc(model, fisher, strength) if strength else []
        optimizer = torch.optim.AdamW(list(params.values()), lr=1e-2)  # as Trainer trains
        other = batches(tokenizer)[2]
        for _ in range(10):
            optimizer.zero_grad()
            model(**other).loss.backward()
            optimizer.step()
        for handle in handles:
            handle.remove()
        moved[strength] = ewc_penalty(model, fisher, anchors, 1.0)
    assert moved[100.0] < 0.1 * moved[0.0]
