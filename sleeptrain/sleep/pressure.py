"""Sleep pressure: how much the pending memories weigh, which decides whether `sleep --if-needed` sleeps."""

from __future__ import annotations

from dataclasses import dataclass

from sleeptrain.hippocampus.memory import Memory

# A memory stored without an importance (e.g. added by hand) still counts as a middling one.
DEFAULT_IMPORTANCE = 0.5


@dataclass(frozen=True)
class Pressure:
    value: float  # the pending memories' importance, summed
    threshold: float
    pending: int

    @property
    def needs_sleep(self) -> bool:
        return self.pending > 0 and self.value >= self.threshold

    def explain(self) -> str:
        if self.pending == 0:
            return "no pending memories"
        verdict = "at or above" if self.needs_sleep else "below"
        return (
            f"sleep pressure {self.value:.2f} from {self.pending} pending memories is {verdict} "
            f"the threshold {self.threshold:.2f}"
        )


def sleep_pressure(pending: list[Memory], threshold: float) -> Pressure:
    value = sum(DEFAULT_IMPORTANCE if m.importance is None else m.importance for m in pending)
    return Pressure(round(value, 4), threshold, len(pending))
