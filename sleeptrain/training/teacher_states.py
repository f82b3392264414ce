"""The base model's final hidden states along distilled anchors, kept on disk from one run to the next.

Under `anchor_distillation` a run computes, once per anchor, the base model's hidden states along its answer
(training/loss.py) with an extra forward pass. They depend only on the base model's files, on how the run
computes (precision, adapter kind, backend, device, library versions) and on the anchor's tokens, so a later
run on the same base reads them instead of running that pass again. At the speed issue's 3 epochs each anchor
is seen once per run, and its pass was about a tenth of the training time.

The cache is only ever an optimisation: a file that cannot be read is ignored (and rewritten), and a base
model that is not a local folder (a hub id) gets none, since its files cannot be fingerprinted here.

May import: torch, transformers, sleeptrain.config, sleeptrain.settings.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch

from sleeptrain.config import Recipe
from sleeptrain.settings import load_settings

log = logging.getLogger("sleeptrain")

# Bumped whenever sleeptrain changes how the base model's pass computes (what the key cannot see).
FORMAT = 2
# Past this, the states not used by the latest run go first: for the default model a hundred anchors take
# about 8 MB (49 positions of 576 fp32 numbers each).
MOST_BYTES = 256 * 1024 * 1024

TeacherStates = dict[tuple[int, ...], torch.Tensor]


def _fingerprint(folder: Path) -> list[Any] | None:
    """Names, sizes and modification times of the files a model loads from, and its config."""
    if not folder.is_dir():
        return None
    files = sorted(p for p in folder.iterdir() if p.suffix in {".safetensors", ".bin", ".json"})
    if not any(p.suffix in {".safetensors", ".bin"} for p in files):
        return None
    return [[p.name, (info := p.stat()).st_size, info.st_mtime_ns] for p in files]


def base_model_key(
    base_path: str,
    recipe: Recipe,
    bf16: bool,
    device_type: str,
    weights_in_bf16: bool = False,
    fp16: bool = False,
) -> dict[str, Any] | None:
    """What the base model's own computations depend on, for a cache key, or None where it cannot be known (a
    hub id). `weights_in_bf16`: an fp32 run's frozen weights are stored rounded to bf16
    (models/bf16_storage.py). `fp16`: the run computes under fp16 autocast (on a GPU)."""
    import transformers

    files = _fingerprint(Path(base_path))
    if files is None:
        return None
    # 8-bit weights compute other states; named only when set, so that the keys (and caches) of other runs
    # stay as they were.
    eight_bit = {"load_in_8bit": True} if recipe.load_in_8bit else {}
    half = {"fp16": True} if fp16 else {}
    return {
        **eight_bit,
        **half,
        "format": FORMAT,
        "model": str(Path(base_path).resolve()),
        "files": files,
        "adapter": recipe.adapter,
        "backend": recipe.backend,
        "bf16": bf16,
        "weights_in_bf16": weights_in_bf16,
        "device": device_type,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }


def teacher_states_path(key: dict[str, Any] | None) -> Path | None:
    """Where the states of the base model `base_model_key` describes are cached; None for None."""
    if key is None:
        return None
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return load_settings().cache_dir / "teacher" / f"{digest}.pt"


def load_teacher_states(path: Path | None, device: torch.device) -> TeacherStates:
    """The cached states (empty where there are none, or the file cannot be read)."""
    if path is None or not path.is_file():
        return {}
    try:
        saved = torch.load(path, map_location=device, weights_only=True)
        states = {tuple(key): value for key, value in zip(saved["keys"], saved["values"], strict=True)}
    except Exception as error:  # a torn or foreign file: the cache is rebuilt, never trusted
        log.info("Ignoring the unreadable cache %s (%s)", path, type(error).__name__)
        return {}
    # The count is the file's, not this run's: it says how much was kept, and where, so it can be deleted.
    log.info("Cached base-model states for %d anchors loaded from %s", len(states), path)
    return states


def save_teacher_states(path: Path | None, states: TeacherStates) -> None:
    """Write the states atomically, the most recently used last, within MOST_BYTES."""
    if path is None or not states:
        return
    kept: list[tuple[tuple[int, ...], torch.Tensor]] = []
    size = 0
    for key, value in reversed(states.items()):
        size += value.numel() * value.element_size()
        if size > MOST_BYTES:
            break
        kept.append((key, value))
    kept.reverse()
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save({"keys": [list(k) for k, _ in kept], "values": [v.detach().cpu() for _, v in kept]}, staging)
    staging.replace(path)
