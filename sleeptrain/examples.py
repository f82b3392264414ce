"""Where the bundled example data lives: the repository's data/ folder in a checkout or editable install,
or the copy a wheel carries as the package `sleeptrain._data` (see pyproject.toml)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from sleeptrain.errors import SleeptrainError


def example_path(relative: str) -> Path:
    checkout = Path(__file__).resolve().parent.parent / "data" / relative
    if checkout.exists():
        return checkout
    try:
        packaged = Path(str(resources.files("sleeptrain._data").joinpath(relative)))
    except ModuleNotFoundError:
        packaged = None
    if packaged is not None and packaged.exists():
        return packaged
    raise SleeptrainError(f"example data {relative!r} is missing from this installation")
