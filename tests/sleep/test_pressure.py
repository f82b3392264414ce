"""Sleep pressure: the pending memories' importance, summed, against the recipe's threshold."""

from __future__ import annotations

from sleeptrain.hippocampus import Memory
from sleeptrain.sleep.pressure import DEFAULT_IMPORTANCE, sleep_pressure


def memory(importance):
    return Memory(id="m", text="t", importance=importance)


def test_pressure_sums_importance_and_counts_unknown_importance_as_middling():
    pressure = sleep_pressure([memory(0.5), memory(0.75), memory(None)], threshold=1.7)
    assert pressure.value == 1.25 + DEFAULT_IMPORTANCE and pressure.pending == 3
    assert pressure.needs_sleep and "at or above" in pressure.explain()


def test_below_the_threshold_or_nothing_pending_needs_no_sleep():
    assert not sleep_pressure([memory(0.2)], threshold=1.0).needs_sleep
    assert "below the threshold 1.00" in sleep_pressure([memory(0.2)], threshold=1.0).explain()
    empty = sleep_pressure([], threshold=0.001)
    assert not empty.needs_sleep and empty.explain() == "no pending memories"
