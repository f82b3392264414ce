"""The folders a workflow writes into, made (and checked writable) before any time goes into a model: a path
that cannot hold the run, or a cache folder that cannot hold the converted model and the recorded answers, is
a one-line error at the start, not a raw OSError once the model has loaded.

Imports sleeptrain.errors, sleeptrain.settings and the standard library.
"""

from __future__ import annotations

import os
from pathlib import Path

from sleeptrain.errors import SleeptrainError
from sleeptrain.settings import load_settings


def make_output_folder(path: Path, what: str) -> Path:
    """Create `path` (and its parents) if needed; `what` names it in the error, e.g. "output_dir"."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        # mkdir's exist_ok accepts only a folder: a file already at `path` is a FileExistsError.
        if path.is_file():
            raise SleeptrainError(f"{what} {path}: a file, not a folder (name a folder to write into)") from exc
        raise SleeptrainError(f"{what} {path}: cannot create this folder ({exc.strerror or exc})") from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise SleeptrainError(f"{what} {path}: this folder is not writable")
    return path


def make_cache_folder() -> Path:
    """The cache folder (the settings' cache_dir), made if needed; an error names SLEEPTRAIN_CACHE_DIR, which moves
    it."""
    return make_output_folder(load_settings().cache_dir, "the cache folder (SLEEPTRAIN_CACHE_DIR)")
