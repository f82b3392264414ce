"""bf16 storage under fp32 arithmetic: a LoRA run on a machine without native bf16 (most laptop CPUs: AVX2,
no AVX-512-BF16 or AMX) keeps its frozen linear weights in bf16 and casts each back to fp32 inside the
product that uses it (into a buffer kept for its shape), so the arithmetic stays fp32 on weights rounded to bf16
(as the bf16 path's are).

There bf16 autocast is no option (emulated bf16 products made TRL's run 9x slower, BENCHMARKS.md), so every
weight sat in fp32: on a Qwen2.5-0.5B-shaped model that is 0.9 GB of a step's 4.5 GB peak. The cast costs a
pass over 2 bytes a weight against the product's 2 x tokens FLOPs, within the noise of a step's time
(BENCHMARKS.md, "Thirteenth session").

Written by hand because neither transformers nor PEFT stores weights in one precision and computes in
another outside autocast (bitsandbytes does so for 4-bit weights only). Imports torch only.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

# One buffer per shape and precision on the CPU, into which every product of that shape casts its weight. A
# fresh fp32 tensor per product touches each of its pages for the first time: during training a 1536 x 576
# cast then took 1.3 ms, against 0.09 ms into memory already touched, and the casts were 11 % of a step on a
# 2-core CPU (BENCHMARKS.md, "Twentieth session"). The cast happens at the product anyway, so keeping its
# buffer adds nothing to the peak.
_CAST_BUFFERS: dict[tuple[torch.Size, torch.dtype], torch.Tensor] = {}


def weight_as(weight: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A frozen `weight` in `dtype`, for one product: valid until the next call for a weight of the same shape
    (a single thread runs a step's products one after another, forward and backward). A weight that trains
    or lives on a GPU (whose allocator hands back memory already touched) is cast as usual."""
    if weight.dtype == dtype:
        return weight
    if weight.requires_grad or weight.device.type != "cpu":
        return weight.to(dtype)
    key = (weight.shape, dtype)
    buffer = _CAST_BUFFERS.get(key)
    if buffer is None:
        # Made outside inference mode even when the first product of this shape runs inside it (a sleep's
        # replay losses and dreams come before its training): an inference tensor may not be written to once
        # training starts, and a new process's second sleep failed there.
        with torch.inference_mode(False):
            buffer = _CAST_BUFFERS[key] = torch.empty(weight.shape, dtype=dtype)
    return buffer.copy_(weight)


class _LinearFromBf16(torch.autograd.Function):
    """`x @ weight.T + bias` in x's dtype for a frozen bf16 weight: the fp32 copy of the weight lives only
    inside the product, forward and backward, and no activation is kept (a frozen weight needs none)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(weight)
        return F.linear(x, weight_as(weight, x.dtype), None if bias is None else bias.to(x.dtype))

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[Any, ...]:
        (weight,) = ctx.saved_tensors
        grad_x = grad_output @ weight_as(weight, grad_output.dtype) if ctx.needs_input_grad[0] else None
        return grad_x, None, None


def _forward_from_bf16(module: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    return _LinearFromBf16.apply(x, module.weight, module.bias)


def compute_linears_from_bf16(model: torch.nn.Module) -> None:
    """Store every linear layer's weight in bf16 and compute it in its input's precision. For frozen weights
    only (LoRA's base model, before the adapter goes on): no gradient reaches these weights."""
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and not getattr(module, "_sleeptrain_from_bf16", False):
            module.weight.data = module.weight.data.to(torch.bfloat16)
            module.forward = _forward_from_bf16.__get__(module)
            module._sleeptrain_from_bf16 = True


def computes_linears_from_bf16(model: torch.nn.Module) -> bool:
    """Whether `compute_linears_from_bf16` set up this model (it then needs no autocast to run)."""
    return any(getattr(module, "_sleeptrain_from_bf16", False) for module in model.modules())
