"""The two RMSNorms of each decoder layer (Llama, Mistral, Qwen2, Qwen3, Phi3) under autocast: one
low-precision output for the linears they feed, and no fp32 copy of the residual stream kept for the backward
pass.

Autocast casts an fp32 input once per linear it enters: a layer's q, k, v and their LoRA A matrices each made
their own bf16 copy of the same normed hidden states, gate and up more, and each LoRA A matrix kept its copy.
The norm hands them one copy instead (the same values: the forward pass is unchanged bit for bit), so one is
kept. Its gradient then sums the linears' contributions in bf16, where each cast summed them in fp32, which
moved LoRA's gradients on the default model by 0.6 % (bf16 autocast itself moves them 3.4 % from fp32).

Autograd's RMSNorm also keeps its fp32 input, the residual stream, for its backward pass: 4 bytes per hidden
unit, twice per layer, a quarter of what a layer keeps. The backward pass needs only the normed values and
each token's 1/rms, and the low-precision output the linears keep already holds the normed values times the
norm's weight; so that output and 1/rms are kept instead. The normed values then come back to the backward
pass rounded to bf16 (2^-9 relative), in one of its two terms (BENCHMARKS.md, "Norms that keep no fp32
copy"). Only for frozen norms (a LoRA run in bf16) whose weight has no zero, and only while gradients are
taken.

Written by hand because no library used here offers it on a CPU (Liger's fused RMSNorm needs Triton and a
GPU). Imports torch only.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

# Decoder layers whose two norms feed only linear layers (attention's q/k/v, the MLP's gate/up), never the
# residual stream. Gemma-style layers, whose extra norms feed the residual, are not among them.
_NORMS_FEEDING_LINEARS = {"llama", "mistral", "qwen2", "qwen3", "phi3"}


class _NormToLowPrecision(torch.autograd.Function):
    """weight * x / rms(x), cast to `dtype`; keeps that output and 1/rms, not x."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, eps: float, dtype: torch.dtype) -> torch.Tensor:
        # The same operations as transformers' RMSNorm on an fp32 input, then the cast autocast would make.
        inverse_rms = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
        out = (weight * (x * inverse_rms)).to(dtype)
        ctx.save_for_backward(out, inverse_rms, weight)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        out, inverse_rms, weight = ctx.saved_tensors
        grad, scaled = grad.float(), out.float()  # scaled: weight * normed
        # d/dx of w * x * r(x), r = (mean(x^2) + eps)^-1/2:  r * (w*g - normed * mean(g * w * normed)).
        projection = (grad * scaled).mean(-1, keepdim=True)
        return inverse_rms * (grad * weight - scaled / weight * projection), None, None, None


def _forward(norm: Any, original: Any, hidden: torch.Tensor) -> torch.Tensor:
    device = hidden.device.type
    if not norm._low_precision_output or not torch.is_autocast_enabled(device) or hidden.dtype != torch.float32:
        return original(hidden)
    dtype = torch.get_autocast_dtype(device)
    if torch.is_grad_enabled() and norm._can_keep_no_input and not norm.weight.requires_grad:
        return _NormToLowPrecision.apply(hidden, norm.weight, norm.variance_epsilon, dtype)
    out = original(hidden)
    return out.to(dtype) if out.dtype == torch.float32 else out


def norms_feed_low_precision(model: Any, enabled: bool = True) -> bool:
    """Under autocast, each decoder layer's two norms hand their linears one tensor in autocast's dtype, and,
    while frozen, keep no fp32 input for the backward pass. Returns whether the model has such norms.
    Installed once per norm, however often the base model is readied for an adapter (every sleep readies it).
    A norm being trained (full fine-tuning) keeps its input as autograd would. With `enabled` false, the norms
    run as transformers wrote them."""
    if getattr(getattr(model, "config", None), "model_type", None) not in _NORMS_FEEDING_LINEARS:
        return False
    found = False
    for name, module in model.named_modules():
        if not name.endswith(("input_layernorm", "post_attention_layernorm")):
            continue
        weight = getattr(module, "weight", None)
        if weight is None or not hasattr(module, "variance_epsilon"):
            continue
        if not hasattr(module, "_can_keep_no_input"):
            module.forward = functools.partial(_forward, module, module.forward)
        # The backward pass divides by the weight to get the normed values back. A weight not loaded yet (on
        # the meta device, as FSDP's ranks but the first may hold it) cannot be checked: that norm keeps its input.
        module._can_keep_no_input = weight.dtype == torch.float32 and not weight.is_meta and bool((weight != 0).all())
        module._low_precision_output = enabled
        found = True
    return found
