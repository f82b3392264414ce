"""One line of a JSONL file read as a JSON object, with errors that name the file and line.

Every reader of user JSONL (data files, memory files, anchor prompts) goes through here, so that a non-UTF-8
byte, a line that is not JSON and a line that is not an object read the same wherever they are found.

May import: sleeptrain.errors.
"""

from __future__ import annotations

import json
from typing import Any

from sleeptrain.errors import SleeptrainError

_FORMAT = "the file should be JSON Lines, one JSON object per line"


def json_object_line(raw: bytes, where: str) -> dict[str, Any]:
    """The JSON object on the line `raw` (bytes as read, its line ending included); `where` is its file:line."""
    try:
        # utf-8-sig: a byte-order mark, which Windows editors and spreadsheet exports put at a file's start, is
        # no error in what the user wrote.
        line = raw.decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise SleeptrainError(f"{where}: not valid UTF-8 (byte 0x{raw[exc.start]:02x})") from None
    # A line that does not even start an object is most likely a file in another format (a JSON array, CSV).
    hint = "" if line.lstrip().startswith("{") else f"; {_FORMAT}"
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        # Some of json's messages end in "at" ("Unterminated string starting at"), others do not ("Expecting value").
        place = f"column {exc.colno}" if exc.msg.endswith(" at") else f"at column {exc.colno}"
        raise SleeptrainError(f"{where}: not valid JSON ({exc.msg} {place}){hint}") from None
    if not isinstance(row, dict):
        raise SleeptrainError(f"{where}: expected a JSON object, got {type(row).__name__}{hint}")
    return row
