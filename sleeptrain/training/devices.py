"""Where this process computes, and a model moved there for the generation around training: the anchors'
and dreams' answers before it, the quickstart's questions before and after it.

Trainer moves a model to its device only when training starts, so without this everything a run generates
first ran on the CPU even beside a GPU: the anchors of a model without shipped answers, a sleep's dreams, the
quickstart's 74 questions twice.
Imports sleeptrain.config, torch and accelerate.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from sleeptrain.config import Recipe

log = logging.getLogger("sleeptrain")

# What generation needs beside the weights: the KV cache of a batch of questions, the logits of its last
# position, the allocator's slack. Generous, as running out of GPU memory would end the run.
GENERATION_HEADROOM_BYTES = 2**30


def compute_device() -> torch.device:
    """This process's GPU where CUDA is present (under `accelerate launch`, each rank its own), else the CPU.
    Trainer is told `use_cpu` where CUDA is absent (training/run.py), so Apple's MPS is not used here either."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    from accelerate import PartialState

    return PartialState().device


def model_bytes(model: Any) -> int:
    return sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))


def fits_beside_generation(size: int, free: int) -> bool:
    """Whether a model of `size` bytes, with what generating from it takes, fits in `free` bytes."""
    return size + GENERATION_HEADROOM_BYTES <= free


def to_compute_device(model: Any, recipe: Recipe) -> Any:
    """`model` on this process's GPU where there is one and the model fits in its free memory, else where it
    is. Stays where it is: a model that `from_pretrained` placed itself (4-bit on CUDA, a `device_map`: moving
    one dispatched over several devices would break it), and one that FSDP or DeepSpeed will shard (a whole
    copy on every GPU first is what they exist to avoid)."""
    device = compute_device()
    placed = getattr(model, "hf_device_map", None) or recipe.uses_fsdp or recipe.deepspeed
    if device.type == "cpu" or placed or model.device == device:
        return model
    free, _ = torch.cuda.mem_get_info(device)
    size = model_bytes(model)
    if not fits_beside_generation(size, free):
        log.info(
            "The base model (%.0f MB) stays on the CPU until training: %s has %.0f MB free",
            size / 2**20,
            device,
            free / 2**20,
        )
        return model
    return model.to(device)
