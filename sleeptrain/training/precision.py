"""Whether a run uses bf16: on a GPU that supports it, or a CPU with AVX-512-BF16 or AMX (where bf16
autocast measured 1.5x the fp32 speed on this project's 2-core machines; see BENCHMARKS.md); and whether its
fp32 matrix products may use TF32 (`tf32`)."""

from __future__ import annotations

import logging
from typing import Literal

from sleeptrain.errors import SleeptrainError

log = logging.getLogger("sleeptrain")


def use_bf16(setting: bool | Literal["auto"]) -> bool:
    import torch

    if torch.cuda.is_available():
        supported = torch.cuda.is_bf16_supported()
    else:
        supported = bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    if setting == "auto":
        return supported
    if setting and not torch.cuda.is_available() and not supported:
        # bf16 still runs on such a CPU, just slowly through emulation; say so rather than refuse.
        log.warning("bf16: this CPU has no native bf16; training will be slow")
    if setting and torch.cuda.is_available() and not supported:
        raise SleeptrainError("bf16: this GPU does not support bf16; set bf16: false")
    return bool(setting)


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
