"""The one exception type that reaches a user as a one-line message (no traceback).

Every module may raise it; the CLI catches it, prints `error: <message>` and exits non-zero.
"""

from __future__ import annotations


class SleeptrainError(Exception):
    """A problem with the user's input or environment, explained in one line."""
