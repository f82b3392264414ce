"""What a run computes in: bf16 on a GPU that has it natively (Ampere or newer) or a CPU with AVX-512-BF16 or
AMX (where bf16 autocast measured 1.5x the fp32 speed on this project's 2-core machines; see BENCHMARKS.md),
fp16 on an NVIDIA GPU without native bf16 (a T4, a V100: Colab's free GPU), else fp32; and whether its fp32
matrix products may use TF32 (`tf32`). The decisions are plain functions of the recipe's keys and the
hardware; `say_precision` puts what a person should know about them into one line each, once a run."""

from __future__ import annotations

import logging
from typing import Literal

from sleeptrain.errors import SleeptrainError

log = logging.getLogger("sleeptrain")

Setting = bool | Literal["auto"]


def native_bf16() -> bool:
    """Whether this machine's device computes bf16 natively. On CUDA not `torch.cuda.is_bf16_supported()`
    as it is called by default: that answers True on a T4 or a V100 too, which only emulate bf16 through
    fp32 arithmetic, more slowly than fp32 itself (pytorch/pytorch#148322, openxla/xla#12429)."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported(including_emulation=False)
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def use_bf16(bf16: Setting, fp16: Setting = "auto") -> bool:
    """Whether a run computes under bf16 autocast. `fp16: true` wins over `bf16: auto` on a GPU, as in
    Axolotl; on a CPU fp16 has no effect (see use_fp16), so there `bf16: auto` decides as usual."""
    import torch

    if bf16 == "auto":
        if fp16 is True and torch.cuda.is_available():
            return False
        return native_bf16()
    if bf16 and torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        raise SleeptrainError("bf16: this GPU does not support bf16; set bf16: false")
    return bool(bf16)


def use_fp16(bf16: Setting, fp16: Setting) -> bool:
    """Whether a run computes under fp16 autocast with a gradient scaler (TrainingArguments' `fp16`): on a
    CUDA GPU, where the recipe says so, or (`fp16: auto`) where `bf16: auto` finds no native bf16. Never on a
    CPU: accelerate runs fp16 mixed precision on GPUs only (a CPU run under it would silently be fp32)."""
    import torch

    if fp16 is False or not torch.cuda.is_available():
        return False
    if fp16 is True:
        return True
    return bf16 == "auto" and not native_bf16()


def precision_name(bf16: Setting, fp16: Setting) -> str:
    """'bf16', 'fp16' or 'fp32': what a run with these keys computes in here."""
    if use_bf16(bf16, fp16):
        return "bf16"
    return "fp16" if use_fp16(bf16, fp16) else "fp32"


def say_precision(bf16: Setting, fp16: Setting) -> None:
    """One line for each precision decision a person would not expect: bf16 asked for where it is slow,
    fp16 asked for where it has no effect, fp16 chosen for them."""
    import torch

    gpu = torch.cuda.is_available()
    if bf16 is True and not native_bf16():
        # bf16 still runs, emulated; say so rather than refuse.
        hint = " (fp16: true computes on its fp16 units)" if gpu else ""
        log.warning("bf16: this %s has no native bf16; training will be slow%s", "GPU" if gpu else "CPU", hint)
    if fp16 is True and not gpu:
        log.info(
            "fp16: no effect on a CPU (fp16 mixed precision runs on GPUs); computing in %s",
            precision_name(bf16, fp16),
        )
    elif fp16 == "auto" and use_fp16(bf16, fp16):
        log.info("fp16: this GPU has no native bf16, so the run computes in fp16 (fp16: false for fp32)")


def use_tf32(setting: bool) -> bool | None:
    """TrainingArguments' `tf32` for the recipe's: True on an NVIDIA GPU that has TF32 (Ampere or newer), an
    error on one without; elsewhere None (left as it is), said in a line: TF32 is a mode of those GPUs only."""
    if not setting:
        return None
    import torch

    if not torch.cuda.is_available():
        log.info("tf32: no effect here (TF32 is a mode of NVIDIA GPUs, Ampere or newer)")
        return None
    from transformers.utils import is_torch_tf32_available

    if not is_torch_tf32_available():
        raise SleeptrainError("tf32: this GPU has no TF32 (it needs an Ampere or newer NVIDIA GPU); set tf32: false")
    return True
