"""Whether a run uses bf16: on a GPU that supports it, or a CPU with AVX-512-BF16 or AMX (where bf16
autocast measured 1.5x the fp32 speed on this project's 2-core machines; see BENCHMARKS.md)."""

from __future__ import annotations

from typing import Literal

from sleeptrain.errors import SleeptrainError


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
        import logging

        logging.getLogger("sleeptrain").warning("bf16: this CPU has no native bf16; training will be slow")
    if setting and torch.cuda.is_available() and not supported:
        raise SleeptrainError("bf16: this GPU does not support bf16; set bf16: false")
    return bool(setting)
