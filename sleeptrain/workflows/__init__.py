"""Workflows: one function per CLI verb (`train`, `quickstart`, ...), which the CLI, the notebooks and the
tests all call. They compose the concept packages and own the files a run writes.

May import: every concept package (config, models, data, training, evaluation, hippocampus, sleep, judges) and
the modules under them (settings, errors, examples); never the CLI.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sleeptrain.workflows.quickstart import QuickstartResult, quickstart
    from sleeptrain.workflows.train import TrainResult, train

__all__ = ["QuickstartResult", "TrainResult", "quickstart", "train"]

_HOMES = {
    "QuickstartResult": "sleeptrain.workflows.quickstart",
    "quickstart": "sleeptrain.workflows.quickstart",
    "TrainResult": "sleeptrain.workflows.train",
    "train": "sleeptrain.workflows.train",
}


def __getattr__(name: str) -> Any:
    # Loaded on first use (PEP 562): `sleeptrain memory list` imports sleeptrain.workflows.memory, and with
    # eager imports here it paid for torch, transformers and peft (~6 s) to read an SQLite file.
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(_HOMES[name])
    # Every name the module homes, at once: importing sleeptrain.workflows.train binds the submodule to this
    # package's `train`, which would then shadow the function for `from sleeptrain.workflows import
    # TrainResult, train`.
    for other, home in _HOMES.items():
        if home == _HOMES[name]:
            globals()[other] = getattr(module, other)
    return globals()[name]
