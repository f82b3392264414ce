"""The labelled-logits loss equals transformers' own causal-LM loss, value and gradients."""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, TrainingArguments

from sleeptrain.training.loss import LabelledLogitsTrainer


def _batch(vocab: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    ids = torch.randint(3, vocab, (2, 12))
    labels = ids.clone()
    labels[:, :7] = -100  # the prompt carries no loss
    labels[1, 10:] = -100  # padding
    mask = torch.ones_like(ids)
    mask[1, 10:] = 0
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def test_loss_and_gradients_match_the_models_own_loss(tiny_model_dir, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    trainer = LabelledLogitsTrainer(model=model, args=TrainingArguments(output_dir=str(tmp_path), use_cpu=True))
    batch = _batch(model.config.vocab_size)

    ours = trainer.compute_loss(model, dict(batch), num_items_in_batch=None)
    ours.backward()
    our_grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    model.zero_grad()
    theirs = model(**batch).loss
    theirs.backward()
    their_grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]

    assert torch.allclose(ours, theirs, atol=1e-5)
    assert len(our_grads) == len(their_grads)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(our_grads, their_grads, strict=True))
