"""Gated MLPs (SwiGLU: Llama, Mistral, Qwen2, Qwen3, Phi3) that keep two tensors for the backward pass
instead of four, with the same values and the same gradients.

`down(silu(gate) * up)` as autograd runs it keeps `gate` (for silu), `silu(gate)` and `up` (for the
product), and the product itself (for down's LoRA A matrix): four intermediate-sized tensors per token and
layer, half of what a decoder layer keeps on the default model. `silu(gate)` and the product are cheap to
make again from `gate` and `up`, so the backward pass makes them again, with the same operations on the
same values (bit for bit the same numbers, so the same gradients); the matrix products are not repeated.
Gradient checkpointing (which re-runs whole layers) makes this moot, so it stands aside under it.

Written by hand because no library used here offers it on a CPU: Liger's fused SwiGLU needs Triton and a
GPU, Unsloth patches its own models only. Imports torch only.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F

_GATED_MLP_MODELS = {"llama", "mistral", "qwen2", "qwen3", "phi3"}


class _SiluTimesUp(torch.autograd.Function):
    """silu(gate) * up, keeping only gate and up; the backward pass is autograd's own formulas for a
    product and for silu, in the same order, so its gradients are the ones autograd would give."""

    @staticmethod
    def forward(ctx: Any, gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(gate, up)
        return F.silu(gate) * up

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gate, up = ctx.saved_tensors
        return torch.ops.aten.silu_backward(grad * up, gate), grad * F.silu(gate)


def _product_again(saved: Any) -> torch.Tensor:
    if isinstance(saved, tuple):
        gate, up = saved
        return F.silu(gate) * up
    return saved


def _lean_forward(mlp: Any, original: Any, x: torch.Tensor) -> torch.Tensor:
    if not (mlp._lean_backward and torch.is_grad_enabled()):
        return original(x)
    if hasattr(mlp, "gate_up_proj"):  # Phi3: one projection for both halves
        gate, up = mlp.gate_up_proj(x).chunk(2, dim=-1)
    else:
        gate, up = mlp.gate_proj(x), mlp.up_proj(x)
    product = _SiluTimesUp.apply(gate, up)

    def keep_the_makings(tensor: torch.Tensor) -> Any:
        # The down projection (its LoRA A matrix, or its weight when trained) keeps its input: keep the two
        # tensors it is made from instead, which _SiluTimesUp keeps anyway.
        return (gate, up) if tensor is product else tensor

    with torch.autograd.graph.saved_tensors_hooks(keep_the_makings, _product_again):
        return mlp.down_proj(product)


def keep_fewer_mlp_activations(model: Any, enabled: bool = True) -> bool:
    """Make the model's gated MLPs keep two tensors for the backward pass instead of four (or, with
    `enabled` false, as autograd would); returns whether the model has such MLPs. Installed once per module,
    however often the base model is readied again (every sleep readies it)."""
    config = getattr(model, "config", None)
    if getattr(config, "model_type", None) not in _GATED_MLP_MODELS:
        return False
    if getattr(config, "hidden_act", None) not in ("silu", "swish"):
        return False
    found = False
    for module in model.modules():
        if not hasattr(module, "down_proj") or not (hasattr(module, "gate_up_proj") or hasattr(module, "gate_proj")):
            continue
        if not hasattr(module, "_lean_backward"):
            module.forward = functools.partial(_lean_forward, module, module.forward)
        module._lean_backward = enabled
        found = True
    return found
