"""A JSONL line is read as one JSON object, or refused in one line that says where and why."""

import pytest

from sleeptrain.errors import SleeptrainError
from sleeptrain.jsonl import json_object_line


def test_a_line_is_read_as_its_object_whatever_its_line_ending():
    assert json_object_line(b'{"question": "Q", "answer": "A"}\r\n', "f.jsonl:1") == {"question": "Q", "answer": "A"}


def test_a_byte_order_mark_at_the_start_of_a_file_is_not_part_of_its_first_object():
    # What Notepad and spreadsheet exports write as a UTF-8 file's first bytes.
    assert json_object_line(b'\xef\xbb\xbf{"question": "Q", "answer": "A"}\r\n', "f.jsonl:1") == {
        "question": "Q",
        "answer": "A",
    }


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"question": "caf\xe9"}\n', "f.jsonl:3: not valid UTF-8 (byte 0xe9)"),
        (
            b'{"question": "Q",}\n',
            "f.jsonl:3: not valid JSON (Expecting property name enclosed in double quotes at column 18)",
        ),
        (b'{"question": "Q\n', "f.jsonl:3: not valid JSON (Unterminated string starting at column 14)"),
        (
            b'["question", "answer"]\n',
            "f.jsonl:3: expected a JSON object, got list; the file should be JSON Lines, one JSON object per line",
        ),
        # The first lines of a JSON array written over several lines, and of a CSV file:
        (
            b"[\n",
            "f.jsonl:3: not valid JSON (Expecting value at column 2); the file should be JSON Lines, one JSON object"
            " per line",
        ),
        (
            b"question,answer\r\n",
            "f.jsonl:3: not valid JSON (Expecting value at column 1); the file should be JSON Lines, one JSON object"
            " per line",
        ),
    ],
)
def test_a_bad_line_is_named_with_what_is_wrong_with_it(raw, message):
    with pytest.raises(SleeptrainError) as caught:
        json_object_line(raw, "f.jsonl:3")
    assert str(caught.value) == message
