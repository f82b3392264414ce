"""The one retry policy for remote judges: exponential backoff with jitter on rate limits (429), server
errors (5xx) and dropped connections; any other error fails at once."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

log = logging.getLogger("sleeptrain")
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    first_delay_s: float = 1.0
    max_delay_s: float = 30.0


def is_transient(exc: BaseException) -> bool:
    """Rate limits, server errors and network failures: worth another try."""
    code = getattr(exc, "code", None) or getattr(exc, "status_code", None)
    if isinstance(code, int):
        return code == 429 or 500 <= code < 600
    name = type(exc).__name__
    return isinstance(exc, ConnectionError | TimeoutError) or name in {
        "ConnectError",
        "ReadTimeout",
        "ConnectTimeout",
        "RemoteProtocolError",
        "ReadError",
        "WriteError",
        "PoolTimeout",
    }


def with_retries(call: Callable[[], T], policy: RetryPolicy, what: str = "request") -> T:
    for attempt in range(1, policy.attempts + 1):
        try:
            return call()
        except Exception as exc:
            if attempt == policy.attempts or not is_transient(exc):
                raise
            delay = min(policy.max_delay_s, policy.first_delay_s * 2 ** (attempt - 1))
            delay *= 0.5 + random.random() / 2  # jitter, so clients that failed together do not retry together
            log.info("%s failed (%s); retry %d of %d in %.1f s", what, exc, attempt, policy.attempts - 1, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")
