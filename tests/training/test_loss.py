"""The labelled-logits loss equals transformers' own causal-LM loss, value and gradients."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, TrainingArguments

import sleeptrain.training.loss as loss_module
from sleeptrain.training.loss import (
    LabelledLogitsTrainer,
    labelled_cross_entropy,
    labelled_distillation,
    shared_prefix_length,
    split_by_token_budget,
)


def _batch(vocab: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    ids = torch.randint(3, vocab, (2, 12))
    labels = ids.clone()
    labels[:, :7] = -100  # the prompt carries no loss
    labels[1, 10:] = -100  # padding
    mask = torch.ones_like(ids)
    mask[1, 10:] = 0
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def assert_same_loss_and_gradients(trainer, model, batch) -> None:
    """Our loss and every gradient it gives equal those of the model's own causal-LM loss."""
    ours = trainer.compute_loss(model, dict(batch))
    ours.backward()
    our_grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    model.zero_grad()
    theirs = model(**batch).loss
    theirs.backward()
    their_grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]

    assert torch.allclose(ours, theirs, atol=1e-5)
    assert len(our_grads) == len(their_grads) > 0
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(our_grads, their_grads, strict=True))


def test_loss_and_gradients_match_the_models_own_loss(tiny_model_dir, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    trainer = LabelledLogitsTrainer(model=model, args=TrainingArguments(output_dir=str(tmp_path), use_cpu=True))
    batch = _batch(model.config.vocab_size)

    assert_same_loss_and_gradients(trainer, model, batch)


def lora_model_and_trainer(model_dir, tmp_path):
    """A tiny model with LoRA on every linear layer (its head frozen, as in training), and our Trainer."""
    from peft import LoraConfig, get_peft_model

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))
    return model, LabelledLogitsTrainer(model=model, args=TrainingArguments(output_dir=str(tmp_path), use_cpu=True))


def test_a_shared_prefix_runs_once_with_the_same_loss_and_gradients(tiny_model_dir, tmp_path):
    model, trainer = lora_model_and_trainer(tiny_model_dir, tmp_path)
    torch.manual_seed(2)
    ids = torch.randint(3, model.config.vocab_size, (3, 24))
    ids[:, :10] = ids[0, :10]  # every row starts with the same 10 tokens, like a template's system prompt
    labels = ids.clone()
    labels[:, :14] = -100
    labels[2, 20:] = -100
    mask = torch.ones_like(ids)
    mask[2, 20:] = 0
    batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    assert shared_prefix_length(ids, mask, labels[:, 1:] != -100) == 10

    assert_same_loss_and_gradients(trainer, model, batch)


def test_no_prefix_is_shared_past_the_first_position_the_loss_reads():
    ids = torch.tensor([[5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]] * 2)
    keep = torch.zeros(2, 11, dtype=torch.bool)
    keep[0, 9] = True
    keep[1, 8] = True  # row 1's hidden state at position 8 is read: only 8 tokens may be shared
    assert shared_prefix_length(ids, None, keep) == 8
    keep[1, 6] = True
    assert shared_prefix_length(ids, None, keep) == 0  # 6 shared tokens are not worth a second pass


def test_the_labelled_path_runs_under_the_trainers_bf16_autocast(tiny_llama, tmp_path):
    # Trainer's mixed precision wraps model.forward; this loss calls the decoder directly and must not
    # silently fall back to fp32 arithmetic.
    model = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, bf16=True)
    trainer = LabelledLogitsTrainer(model=model, args=args)
    seen = []
    model.model.layers[0].mlp.down_proj.register_forward_hook(lambda module, i, out: seen.append(out.dtype))
    trainer.compute_loss(model, _batch(model.config.vocab_size))
    assert seen == [torch.bfloat16]


def test_a_batch_over_the_token_budget_trains_in_passes_with_the_same_gradients(tiny_llama, tmp_path):
    model, trainer = lora_model_and_trainer(tiny_llama, tmp_path)
    torch.manual_seed(3)
    ids = torch.randint(3, model.config.vocab_size, (4, 20))
    labels = ids.clone()
    labels[:, :8] = -100
    mask = torch.ones_like(ids)
    mask[2:, 12:] = 0  # the last two rows are shorter (right padding)
    labels[mask == 0] = -100
    batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    count = int((labels[:, 1:] != -100).sum())

    def gradients_and_loss(budget):
        model.zero_grad()
        trainer.max_tokens_per_pass = budget
        loss = trainer.training_step(model, dict(batch), num_items_in_batch=count)
        return loss, [p.grad.clone() for p in model.parameters() if p.grad is not None]

    whole_loss, whole = gradients_and_loss(None)
    split_loss, split = gradients_and_loss(40)  # two rows (40 tokens) per pass

    passes = split_by_token_budget(batch, 40)
    assert [tuple(p["input_ids"].shape) for p in passes] == [(2, 20), (2, 12)]  # the short rows lose their padding
    assert torch.allclose(whole_loss, split_loss, atol=1e-5)
    assert len(whole) == len(split) > 0
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(whole, split, strict=True))


def test_rows_over_the_budget_are_dealt_evenly_among_as_few_passes_as_it_allows():
    # The largest pass sets the step's memory: 8 rows of 10 tokens under a budget of 50 (5 rows) train as
    # 4 + 4, not 5 + 3; 9 rows as 3 + 3 + 3 under a budget of 30.
    def rows_per_pass(rows, budget):
        batch = {"input_ids": torch.ones(rows, 10, dtype=torch.long)}
        return [part["input_ids"].shape[0] for part in split_by_token_budget(batch, budget)]

    assert rows_per_pass(8, 50) == [4, 4]
    assert rows_per_pass(9, 30) == [3, 3, 3]
    assert rows_per_pass(8, 80) == [8]


@pytest.mark.parametrize("autocast", [False, True], ids=["fp32", "bf16-autocast"])
def test_the_chunked_frozen_head_loss_equals_the_plain_one(autocast, monkeypatch):
    # The head's logits are made a few positions at a time (here 3: 40 values of a 13-word vocabulary), with the
    # same arithmetic as cross_entropy(lm_head(hidden).float()) under the same autocast.
    monkeypatch.setattr(loss_module, "_LOGITS_PER_CHUNK", 40)
    torch.manual_seed(4)
    weight = torch.randn(13, 16)
    targets = torch.randint(0, 13, (10,))
    hidden = torch.randn(10, 16, requires_grad=True)
    plain_hidden = hidden.detach().clone().requires_grad_(True)

    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        ours = labelled_cross_entropy(hidden, weight, targets, 1 / 7)
        plain = (
            torch.nn.functional.cross_entropy(
                torch.nn.functional.linear(plain_hidden, weight).float(), targets, reduction="sum"
            )
            / 7
        )
    ours.backward()
    plain.backward()

    assert torch.allclose(ours, plain, atol=1e-6)
    assert torch.allclose(hidden.grad, plain_hidden.grad, atol=1e-6)


def _relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return float((ours - reference).norm() / reference.norm())


@pytest.mark.parametrize("loss", ["cross-entropy", "distillation"])
def test_under_fp16_autocast_the_frozen_head_keeps_small_gradients(loss):
    # fp16 (a T4's mixed precision) holds normal numbers down to 6e-5 only; GradScaler keeps gradients above
    # that by scaling the loss before the backward pass, but this loss works out the hidden states' gradient
    # in its forward pass. At a real head's size (weights ~0.02) and a batch's 1/labels (~1e-3) that gradient
    # lies around 1e-5: it must be made at a scale fp16 holds, and scaled down in fp32.
    torch.manual_seed(7)
    weight = torch.randn(2000, 64) * 0.02
    hidden = torch.randn(40, 64) * 3
    targets = torch.randint(0, 2000, (40,))
    teacher_hidden = hidden + torch.randn(40, 64)

    def hidden_gradient(autocast: bool) -> torch.Tensor:
        h = hidden.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.float16, enabled=autocast):
            if loss == "cross-entropy":
                value = labelled_cross_entropy(h, weight, targets, 1 / 2000)
            else:
                value = labelled_distillation(h, teacher_hidden, weight, 1 / 2000)
        (value * 2.0**16).backward()  # as GradScaler's initial scale does
        return h.grad / 2.0**16

    assert _relative_error(hidden_gradient(autocast=True), hidden_gradient(autocast=False)) < 0.01


def test_the_loss_tells_which_targets_the_model_would_write(monkeypatch):
    """Each target at probability 0.5 or more (so the argmax: greedy decoding writes it), chunk by chunk;
    what training/schedule.py counts an example learnt by."""
    monkeypatch.setattr(loss_module, "_LOGITS_PER_CHUNK", 40)
    torch.manual_seed(6)
    weight = torch.randn(13, 16) * 3
    hidden = torch.randn(10, 16)
    targets = (hidden @ weight.T).argmax(dim=1)
    targets[::3] = (targets[::3] + 1) % 13  # some targets that are not the model's choice
    written = torch.zeros(10, dtype=torch.bool)

    labelled_cross_entropy(hidden, weight, targets, 1.0, written)

    probability = (hidden @ weight.T).softmax(dim=1).gather(1, targets[:, None]).squeeze(1)
    assert torch.equal(written, probability >= 0.5)
    assert written.any() and not written.all()


# ------------------------------------------------------------------------------------------ distillation


@pytest.mark.parametrize("autocast", [False, True], ids=["fp32", "bf16-autocast"])
def test_the_chunked_distillation_loss_equals_the_plain_kl_divergence(autocast, monkeypatch):
    monkeypatch.setattr(loss_module, "_LOGITS_PER_CHUNK", 80)  # 2 positions per chunk (3 copies of 13 words)
    torch.manual_seed(5)
    weight = torch.randn(13, 16)
    teacher_hidden = torch.randn(10, 16)
    hidden = torch.randn(10, 16, requires_grad=True)
    plain_hidden = hidden.detach().clone().requires_grad_(True)

    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        ours = labelled_distillation(hidden, teacher_hidden, weight, 1 / 7)
        student = torch.nn.functional.linear(plain_hidden, weight).float().log_softmax(-1)
        teacher = torch.nn.functional.linear(teacher_hidden, weight).float().log_softmax(-1)
        plain = torch.nn.functional.kl_div(student, teacher, log_target=True, reduction="sum") / 7
    ours.backward()
    plain.backward()

    assert plain > 0
    assert torch.allclose(ours, plain, atol=1e-6)
    assert torch.allclose(hidden.grad, plain_hidden.grad, atol=1e-6)


def _prefixed_batch(vocab: int) -> dict[str, torch.Tensor]:
    """Three rows that start with the same 10 tokens (a template's system prompt), labels from position 14."""
    torch.manual_seed(2)
    ids = torch.randint(3, vocab, (3, 24))
    ids[:, :10] = ids[0, :10]
    labels = ids.clone()
    labels[:, :14] = -100
    labels[2, 20:] = -100
    mask = torch.ones_like(ids)
    mask[2, 20:] = 0
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


@pytest.mark.parametrize("make_batch", [_batch, _prefixed_batch], ids=["plain", "shared-prefix"])
def test_distilled_rows_are_taught_the_base_models_distributions(tiny_llama, tmp_path, make_batch):
    model, trainer = lora_model_and_trainer(tiny_llama, tmp_path)
    batch = make_batch(model.config.vocab_size)
    rows = batch["input_ids"].shape[0]
    count = int((batch["labels"][:, 1:] != -100).sum())
    distill = torch.zeros(rows, dtype=torch.long)
    distill[1:] = 1  # every row but the first is an anchor

    distilled = trainer.compute_loss(model, dict(batch) | {"distill": distill})

    # The first row's cross-entropy, plus the KL of the others to the model with the adapter off.
    first_row = trainer.compute_loss(model, {k: v[:1] for k, v in batch.items()}, num_items_in_batch=count)
    inputs = {k: v[1:] for k, v in batch.items() if k != "labels"}
    keep = batch["labels"][1:, 1:] != -100
    with model.disable_adapter():
        base_hidden = model.get_base_model().model(**inputs).last_hidden_state[:, :-1][keep]
    our_hidden = model.get_base_model().model(**inputs).last_hidden_state[:, :-1][keep]
    head = model.get_base_model().lm_head.weight
    kl = torch.nn.functional.kl_div(
        (our_hidden @ head.T).log_softmax(-1), (base_hidden @ head.T).log_softmax(-1), log_target=True, reduction="sum"
    )
    assert kl > 0
    assert torch.allclose(distilled, first_row + kl / count, atol=1e-5)

    # With the adapter at zero (LoRA's own initialisation) the distilled rows cost nothing.
    for name, parameter in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.zeros_(parameter)
    only_anchors = trainer.compute_loss(model, dict(batch) | {"distill": torch.ones(rows, dtype=torch.long)})
    assert abs(only_anchors.item()) < 1e-6


def test_each_anchor_asks_the_base_model_once(tiny_llama, tmp_path):
    """An anchor comes back in later epochs; the base model's hidden states along it are computed the first
    time and reused, with the same loss."""
    model, trainer = lora_model_and_trainer(tiny_llama, tmp_path)
    for name, parameter in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=0.02)  # an adapter that has learnt something
    batch = _batch(model.config.vocab_size)
    distill = torch.ones(batch["input_ids"].shape[0], dtype=torch.long)
    calls = []
    model.get_base_model().model.register_forward_hook(lambda *args: calls.append(1))

    first = trainer.compute_loss(model, dict(batch) | {"distill": distill})
    student_and_teacher = len(calls)
    again = trainer.compute_loss(model, dict(batch) | {"distill": distill})

    assert student_and_teacher == 1 + len(distill)  # the student's pass, and one teacher pass per anchor
    assert len(calls) - student_and_teacher == 1  # the second step: the student alone
    assert len(trainer.teacher_cache) == len(distill)
    assert first > 0 and torch.allclose(first, again)


def test_an_anchors_teacher_states_do_not_depend_on_the_batch_it_came_in(tiny_llama, tmp_path):
    """The states are cached from run to run, so they must be the same numbers whichever anchors shared the
    batch that first needed them (padded to another length, or not padded at all): otherwise a run's result
    would depend on what earlier runs happened to batch together."""
    model, _ = lora_model_and_trainer(tiny_llama, tmp_path)
    batch = _batch(model.config.vocab_size)  # row 1 (10 tokens) padded to row 0's 12
    alone = {key: value[1:, :10] for key, value in batch.items()}
    torch.manual_seed(3)
    other = torch.randint(3, model.config.vocab_size, (1, 16))  # another anchor, longer: more padding
    beside_another = {
        "input_ids": torch.cat([other, torch.nn.functional.pad(alone["input_ids"], (0, 6))]),
        "attention_mask": torch.cat([torch.ones(1, 16, dtype=torch.long), torch.tensor([[1] * 10 + [0] * 6])]),
        "labels": torch.cat([other, torch.nn.functional.pad(alone["labels"], (0, 6), value=-100)]),
    }

    def states(inputs: dict) -> torch.Tensor:
        _, trainer = lora_model_and_trainer(tiny_llama, tmp_path)
        rows = inputs["input_ids"].shape[0]
        trainer.compute_loss(model, dict(inputs) | {"distill": torch.ones(rows, dtype=torch.long)})
        return trainer.teacher_cache[tuple(batch["input_ids"][1, :10].tolist())]

    padded = states(batch)
    assert torch.equal(states(alone), padded)
    assert torch.equal(states(beside_another), padded)
    assert padded.shape[0] == int((batch["labels"][1, 1:] != -100).sum())


def test_a_training_step_under_fp16_autocast_gives_the_fp32_step_s_gradients(tiny_llama, tmp_path):
    """What a T4 runs (fp16: auto): the whole labelled-logits step, the shared-prefix pass, the lean MLP and
    the distilled anchors under fp16 autocast, its loss scaled as GradScaler scales it. Accelerate runs fp16
    on GPUs only, so here the autocast and the scale are applied around the trainer's own loss."""
    model, trainer = lora_model_and_trainer(tiny_llama, tmp_path)
    for name, parameter in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=0.02)  # an adapter that has learnt something
    batch = _prefixed_batch(model.config.vocab_size)
    distill = torch.tensor([0, 1, 1])  # one fact, two anchors

    def step(autocast: bool) -> tuple[float, list[torch.Tensor]]:
        model.zero_grad()
        trainer.teacher_cache = None
        with torch.autocast("cpu", dtype=torch.float16, enabled=autocast):
            loss = trainer.compute_loss(model, dict(batch) | {"distill": distill})
        (loss * 2.0**16).backward()
        return loss.item(), [p.grad / 2.0**16 for p in model.parameters() if p.grad is not None]

    fp32_loss, fp32_grads = step(autocast=False)
    fp16_loss, fp16_grads = step(autocast=True)

    assert abs(fp16_loss - fp32_loss) < 1e-2 * fp32_loss
    assert len(fp16_grads) == len(fp32_grads) > 0
    assert all(torch.isfinite(g).all() for g in fp16_grads)
    assert (
        _relative_error(torch.cat([g.flatten() for g in fp16_grads]), torch.cat([g.flatten() for g in fp32_grads]))
        < 0.02
    )
