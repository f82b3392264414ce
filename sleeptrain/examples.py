"""Where the bundled example data lives: the repository's data/ folder in a checkout or editable install,
or the copy a wheel carries inside the package as `sleeptrain/_data/` (see pyproject.toml)."""

from __future__ import annotations

from pathlib import Path

from sleeptrain.errors import SleeptrainError

_PACKAGE = Path(__file__).resolve().parent


def example_path(relative: str) -> Path:
    for root in (_PACKAGE.parent / "data", _PACKAGE / "_data"):
        if (root / relative).exists():
            return root / relative
    raise SleeptrainError(f"example data {relative!r} is missing from this installation")
