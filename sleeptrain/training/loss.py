"""A Trainer whose loss runs the language-model head only where a label is.

A chat example's loss covers the answer; the system prompt and the question (most of its tokens) carry none,
yet a causal LM's forward computes vocabulary-sized logits for every position (49 152 columns for the
default model). Here the decoder runs as usual and the head runs on the labelled positions alone, which
gives the same loss and gradients for less work. Neither transformers nor TRL offers this for training
(`logits_to_keep` selects positions shared by the whole batch), hence this override. It applies to a
single-process run of a model with a plain `lm_head`; anything else (DDP/FSDP/DeepSpeed wrappers, logit
soft-capping) takes Trainer's own path.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from transformers import Trainer

IGNORE_INDEX = -100


def _plain_causal_lm(model: Any) -> Any | None:
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = getattr(inner, "lm_head", None)
    config = getattr(inner, "config", None)
    if not isinstance(head, torch.nn.Linear) or not hasattr(inner, "get_decoder"):
        return None
    if getattr(config, "final_logit_softcapping", None) or getattr(config, "logit_scale", None):
        return None
    return inner


class LabelledLogitsTrainer(Trainer):
    # Off for models whose forward brings its own fused loss kernel (Unsloth's), which is faster still.
    labelled_logits: bool = True

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        causal_lm = None
        if self.labelled_logits and not return_outputs and self.args.world_size == 1 and self.model_accepts_loss_kwargs:
            causal_lm = _plain_causal_lm(model)
        if causal_lm is None or "labels" not in inputs:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        targets = inputs["labels"][:, 1:]
        keep = targets != IGNORE_INDEX
        hidden = causal_lm.get_decoder()(
            input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask")
        ).last_hidden_state
        logits = causal_lm.lm_head(hidden[:, :-1][keep]).float()
        loss = F.cross_entropy(logits, targets[keep], reduction="sum")
        # The same normalisation as transformers' causal-LM loss: by the label count of the whole
        # accumulated batch when Trainer gives it, else of this batch.
        count = num_items_in_batch if num_items_in_batch is not None else keep.sum()
        if torch.is_tensor(count):
            count = count.to(loss.device)
        return loss / count
