"""Elastic weight consolidation: a quadratic pull of the trainable weights toward where they were, weighted
by how much each weight mattered to what was learnt before (the diagonal of the empirical Fisher).

    penalty = lambda / 2 * sum_i F_i / mean(F) * (theta_i - theta*_i) ** 2

The Fisher is computed once per adapter version, on the memories that version consolidated, and added to the
previous version's (online EWC), so a sleep never recomputes it over all earlier data; it is saved beside the
adapter as `fisher.safetensors`. Dividing by its mean makes `ewc_lambda` independent of the model's scale.

The penalty reaches Trainer as a gradient hook on each trainable weight (the penalty's gradient,
lambda * F_i / mean(F) * (theta_i - theta*_i), added to the loss's), so the existing Trainer and its loss run
unchanged; gradient clipping, accumulation and the optimizer see the sum as they would a loss term.
Neither transformers nor PEFT offers EWC, hence this module.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger("sleeptrain")

FISHER_FILE = "fisher.safetensors"
_COUNT_KEY = "__examples__"


def trainable_parameters(model: Any) -> dict[str, torch.nn.Parameter]:
    return {name: param for name, param in model.named_parameters() if param.requires_grad}


def empirical_fisher(model: Any, batches: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Sum over examples of the squared gradient of each example's loss (each batch is one example, so that
    the squares are per example, as the Fisher needs), on the trainable weights only."""
    params = trainable_parameters(model)
    fisher = {name: torch.zeros_like(p, dtype=torch.float32) for name, p in params.items()}
    was_training = model.training
    model.eval()  # no dropout: the Fisher of the model as it will answer
    try:
        for batch in batches:
            model.zero_grad(set_to_none=True)
            loss = model(**{k: v.to(model.device) for k, v in batch.items()}).loss
            loss.backward()
            for name, p in params.items():
                if p.grad is not None:
                    fisher[name] += p.grad.detach().float() ** 2
        model.zero_grad(set_to_none=True)
    finally:
        model.train(was_training)
    fisher[_COUNT_KEY] = torch.tensor([float(len(batches))])
    return fisher


def accumulate(previous: dict[str, torch.Tensor] | None, new: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Online EWC: the Fisher of everything consolidated so far is the sum of each version's."""
    if not previous:
        return new
    return {name: previous.get(name, torch.zeros_like(value)) + value for name, value in new.items()}


def save_fisher(fisher: dict[str, torch.Tensor], folder: Path) -> Path:
    from safetensors.torch import save_file

    path = Path(folder) / FISHER_FILE
    save_file({name: value.contiguous() for name, value in fisher.items()}, str(path))
    return path


def load_fisher(folder: Path | None) -> dict[str, torch.Tensor] | None:
    if folder is None or not (Path(folder) / FISHER_FILE).is_file():
        return None
    from safetensors.torch import load_file

    return load_file(str(Path(folder) / FISHER_FILE))


def attach_ewc(model: Any, fisher: dict[str, torch.Tensor], strength: float) -> list[Any]:
    """Pull the model's trainable weights toward their current values with the given Fisher; returns the hook
    handles (call .remove() on each to detach). Weights the Fisher does not cover are left free."""
    params = trainable_parameters(model)
    covered = [name for name in params if name in fisher]
    if not covered:
        log.warning("EWC: the Fisher covers none of the trainable weights; no penalty")
        return []
    mean = torch.cat([fisher[name].flatten() for name in covered]).mean().clamp_min(1e-30)
    handles = []
    for name in covered:
        param = params[name]
        weight = (strength * fisher[name] / mean).to(param.device, param.dtype)
        anchor = param.detach().clone()

        def pull(grad: torch.Tensor, param: torch.Tensor = param, weight=weight, anchor=anchor) -> torch.Tensor:
            return grad + weight * (param.detach() - anchor)

        handles.append(param.register_hook(pull))
    log.info("EWC: lambda=%g on %d weight tensors", strength, len(covered))
    return handles


def ewc_penalty(
    model: Any, fisher: dict[str, torch.Tensor], anchors: dict[str, torch.Tensor], strength: float
) -> float:
    """The penalty's value for given anchor weights (for reports and tests)."""
    params = trainable_parameters(model)
    covered = [name for name in params if name in fisher and name in anchors]
    if not covered:
        return 0.0
    mean = torch.cat([fisher[name].flatten() for name in covered]).mean().clamp_min(1e-30)
    total = sum(
        ((fisher[n] / mean) * (params[n].detach().float() - anchors[n].float()) ** 2).sum().item() for n in covered
    )
    return strength / 2 * total
