"""Progress bars for the phases Trainer does not draw (asking a model, finding directions, scoring memories):
tqdm's, as Trainer's own bar is, and transient. Any module may import this one; it imports tqdm only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def progress_bar(
    items: Iterable[Any] | None = None, *, label: str | None, total: int | None = None, unit: str = "it"
) -> Any:
    """A bar labelled `label` over `items` (or one to update by hand, of `total` steps); without a label, a bar
    that draws nothing, so callers need no branch of their own."""
    from tqdm.auto import tqdm

    if total is None and items is not None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    return tqdm(items, desc=label, total=total, unit=unit, leave=False, disable=label is None)
