"""The one exception type that reaches a user as a one-line message (no traceback).

Every module may raise it; the CLI catches it, prints `error: <message>` and exits non-zero.
"""

from __future__ import annotations

import json


class SleeptrainError(Exception):
    """A problem with the user's input or environment, explained in one line."""


def json_line_error(where: str, exc: json.JSONDecodeError) -> SleeptrainError:
    """The error for a line of a JSONL file that is not JSON, saying where in the line. Some of json's messages
    end in "at" ("Unterminated string starting at"), others do not ("Expecting value")."""
    place = f"column {exc.colno}" if exc.msg.endswith(" at") else f"at column {exc.colno}"
    return SleeptrainError(f"{where}: not valid JSON ({exc.msg} {place})")
