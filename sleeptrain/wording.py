"""How counts are written in what sleeptrain prints ("1 example", "3 examples", "0.6 epochs"). Any module may
import this one; it imports nothing."""

from __future__ import annotations


def counted(number: float, noun: str) -> str:
    return f"{number:g} {noun}" + ("" if number == 1 else "s")
