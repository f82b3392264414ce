"""The hippocampus: every incoming memory is judged (importance, reality, contradiction) and stored with
its decision before anything may become weights.

Owns the memory types (`memory.py`), the SQLite memory store (`store.py`) and the gate that decides
store / reject / correct. May import sleeptrain.config, sleeptrain.errors, sleeptrain.records, sleeptrain.judges
and the standard library; never sleep/, training/ or the CLI.
"""

from sleeptrain.hippocampus.memory import Memory, Verdict
from sleeptrain.hippocampus.store import MemoryStore

__all__ = ["Memory", "MemoryStore", "Verdict"]
