"""The rows of a user's data file as JSON objects, each with where it is, whatever the file's format.

Every reader of user rows (data files, memory files, anchor prompts) goes through here, so that a file's
format, a non-UTF-8 byte, a line that is not JSON and a row that is not an object read the same wherever
they are found. The format comes from the file's suffix, or from a dataset's `ds_type` (Axolotl's key):
- JSON Lines (`.jsonl`, and any suffix not below): one object per line; a row is named FILE:LINE.
- JSON (`.json`): JSON Lines, or one array of objects, as Alpaca's data and many exports are written; a row
  is named by the line its object starts on.
- CSV (`.csv`) and TSV (`.tsv`): a header row of field names, then a row per object, as spreadsheets save
  them; every value is text and an empty cell is an absent field (CSV has no null). FILE:LINE.
- Parquet (`.parquet`): as `datasets` saves rows and the hub stores them; named FILE row N (it has no lines).
- Arrow (`.arrow`): the files `datasets` keeps its rows in (its cache, save_to_disk's folders); FILE row N.
- Plain text (`.txt`): a row {"text": line} per line, as `datasets`' text loader reads it for Axolotl (for
  `type: completion`); FILE:LINE. A `.txt` file whose first line is a JSON object is read as JSON Lines.
- A folder `datasets`' save_to_disk wrote (FOLDER row N), one split of it.
Any of the text formats may be compressed as data dumps often are (`facts.jsonl.gz`, `.bz2`, `.xz`, the
standard library's codecs): read as the suffix before the compression's says, lines counted in the
decompressed text.
A file that cannot be read at all raises SleeptrainError; a row that cannot be read is a Record holding its
error, so that a reader may stop there (training data) or go on (memory files count the other rows).

May import: sleeptrain.errors, the standard library, pyarrow (for Parquet) and datasets (for saved ones), lazily.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import lzma
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sleeptrain.errors import SleeptrainError

FileFormat = Literal["json", "csv", "tsv", "parquet", "arrow", "text"]
_SUFFIXES: dict[str, FileFormat] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".arrow": "arrow",
    ".txt": "text",
}
FORMATS_READ = (
    "JSON Lines, a JSON array, CSV, TSV, Parquet, Arrow or plain text, the text forms also as .gz, .bz2 or .xz"
)
_OPENERS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
# What a damaged compressed file raises while it is read (gzip's BadGzipFile and bz2's errors are OSErrors).
_DECOMPRESSION_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError)
_JSON_LINES = (
    "the file should be JSON Lines (one JSON object per line) or a JSON array of objects; a .csv, .tsv,"
    " .parquet, .arrow or .txt file is read as its suffix says"
)
_SPACE = re.compile(r"\s*")


@dataclass(frozen=True)
class Record:
    number: int  # the line the row starts on; the row number of a Parquet, Arrow or saved dataset
    where: str  # FILE:LINE, or FILE row N
    row: dict[str, Any] | None  # None where the row could not be read
    error: str | None = None  # why not, beginning with `where`

    def object(self) -> dict[str, Any]:
        """The row, or its error raised."""
        if self.row is None:
            raise SleeptrainError(self.error or f"{self.where}: unreadable")
        return self.row


def is_pattern(path: Path) -> bool:
    """Whether a data file's name is a glob pattern (`data/train-*.parquet`), as `datasets` expands them."""
    return any(mark in str(path) for mark in "*?[")


def data_files_in(folder: Path) -> list[Path]:
    """The files under `folder` a recipe could name (a hub dataset's snapshot keeps them in data/), for the
    error that a folder is no data file."""
    # Two levels only: a folder named by mistake may be a home folder.
    found = sorted([*folder.glob("*"), *folder.glob("[!.]*/*")])
    return [path for path in found if _format_suffix(path) in (*_SUFFIXES, ".json", ".jsonl") and path.is_file()][:3]


def file_format(path: Path, declared: FileFormat | None = None) -> FileFormat:
    """How `path` is read: as `declared` (a dataset's ds_type) where given, else by its suffix."""
    return declared or _SUFFIXES.get(_format_suffix(path), "json")


def _format_suffix(path: Path) -> str:
    """The suffix that names the format: `.jsonl` of `facts.jsonl.gz`."""
    suffix = path.suffix.lower()
    return Path(path.stem).suffix.lower() if suffix in _OPENERS else suffix


def _open_bytes(path: Path) -> io.BufferedIOBase:
    """The file's bytes, decompressed where its suffix names a compression."""
    opener = _OPENERS.get(path.suffix.lower())
    return opener(path, "rb") if opener else path.open("rb")


def _read_bytes(path: Path) -> bytes:
    with _open_bytes(path) as handle:
        return handle.read()


def is_saved_dataset(path: Path) -> bool:
    """Whether `path` is a folder `datasets`' save_to_disk wrote (one Dataset, or a DatasetDict of splits)."""
    return (path / "dataset_dict.json").is_file() or (
        (path / "state.json").is_file() and (path / "dataset_info.json").is_file()
    )


def read_records(path: Path, declared: FileFormat | None = None, split: str | None = None) -> Iterator[Record]:
    """Each row of the file (or saved dataset) in order, blank lines skipped; raises SleeptrainError where the
    whole file cannot be read (the caller has checked that it exists). `split` chooses among a saved
    DatasetDict's splits; a file is one split, train."""
    if path.is_dir():
        yield from _saved_dataset_records(path, split)
        return
    if split not in (None, "train"):
        raise SleeptrainError(f"{path}: split {split!r}: a data file is one split, train (give the file it is in)")
    try:
        yield from _file_records(path, declared)
    except _DECOMPRESSION_ERRORS as exc:
        if path.suffix.lower() not in _OPENERS:
            raise
        problem = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SleeptrainError(f"{path}: not a readable {path.suffix.lower()} file ({problem})") from None


def _file_records(path: Path, declared: FileFormat | None) -> Iterator[Record]:
    kind = file_format(path, declared)
    if kind in ("parquet", "arrow"):
        yield from _arrow_table_records(path, kind)
    elif kind in ("csv", "tsv"):
        yield from _csv_records(path, "\t" if kind == "tsv" else ",")
    elif kind == "text" and not (declared is None and _first_line_is_an_object(path)):
        yield from _text_line_records(path)
    elif _first_character(path) == "[":
        yield from _json_array_records(path)
    else:
        yield from _json_lines_records(path)


def json_object_line(raw: bytes, where: str) -> dict[str, Any]:
    """The JSON object on the line `raw` (bytes as read, its line ending included); `where` is its file:line."""
    try:
        # utf-8-sig: a byte-order mark, which Windows editors and spreadsheet exports put at a file's start, is
        # no error in what the user wrote.
        line = raw.decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise SleeptrainError(f"{where}: not valid UTF-8 (byte 0x{raw[exc.start]:02x})") from None
    # A line that does not even start an object is most likely a file in another format.
    hint = "" if line.lstrip().startswith("{") else f"; {_JSON_LINES}"
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise SleeptrainError(f"{where}: not valid JSON ({_json_problem(exc)}){hint}") from None
    if not isinstance(row, dict):
        raise SleeptrainError(f"{where}: expected a JSON object, got {type(row).__name__}{hint}")
    return row


def _json_problem(exc: json.JSONDecodeError) -> str:
    # Some of json's messages end in "at" ("Unterminated string starting at"), others do not ("Expecting value").
    return f"{exc.msg} column {exc.colno}" if exc.msg.endswith(" at") else f"{exc.msg} at column {exc.colno}"


def _first_character(path: Path) -> str:
    with _open_bytes(path) as handle:
        start = handle.read(4096).removeprefix(b"\xef\xbb\xbf").lstrip()
    return start[:1].decode("latin-1")


def _first_line_is_an_object(path: Path) -> bool:
    """Whether a `.txt` file is JSON Lines under another suffix, as data files often are."""
    with _open_bytes(path) as handle:
        first = next((line for line in handle if line.strip()), b"")
    try:
        return isinstance(json.loads(first.decode("utf-8-sig")), dict)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False


def _text_line_records(path: Path) -> Iterator[Record]:
    # Split at line feeds only: str.splitlines also splits at form feeds and other separators, which an
    # editor's line numbers do not count.
    for number, line in enumerate(_text(path).split("\n"), start=1):
        if line.strip():
            yield Record(number, f"{path}:{number}", {"text": line.removesuffix("\r")})


def _json_lines_records(path: Path) -> Iterator[Record]:
    first = True
    with _open_bytes(path) as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            where = f"{path}:{number}"
            try:
                yield Record(number, where, json_object_line(raw, where))
            except SleeptrainError as exc:
                if first and raw.strip().removeprefix(b"\xef\xbb\xbf").startswith(b"{"):
                    _refuse_one_object_over_lines(path)
                yield Record(number, where, None, str(exc))
            first = False


def _refuse_one_object_over_lines(path: Path) -> None:
    """A first line that opens an object it does not close: a whole file that is one object (pretty-printed
    JSON, or `{"data": [...]}`) is no list of rows, and saying so helps more than line 1's syntax."""
    try:
        whole = json.loads(_read_bytes(path).decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return
    if isinstance(whole, dict):
        lists = [key for key, value in whole.items() if isinstance(value, list)]
        inside = f" (its rows may be the list under {lists[0]!r}: write that list as the file)" if lists else ""
        raise SleeptrainError(f"{path}: one JSON object over several lines, not rows{inside}; {_JSON_LINES}")


def _text(path: Path) -> str:
    raw = _read_bytes(path)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise SleeptrainError(f"{path}:{line}: not valid UTF-8 (byte 0x{raw[exc.start]:02x})") from None


def _json_array_records(path: Path) -> Iterator[Record]:
    """Each object of a file that is one JSON array, named by the line it starts on. Hand-written over
    `json.JSONDecoder.raw_decode` because `json.load` (and `datasets`' JSON loader) give no positions, and a
    user fixing row 3,112 of a 40,000-line file needs its line."""
    text = _text(path)
    decoder = json.JSONDecoder()
    index = _SPACE.match(text, text.index("[") + 1).end()
    line, counted = 1, 0
    if text.startswith("]", index):
        index += 1
    else:
        while True:
            line, counted = line + text.count("\n", counted, index), index
            try:
                value, index = decoder.raw_decode(text, index)
            except json.JSONDecodeError as exc:
                raise SleeptrainError(f"{path}:{exc.lineno}: not valid JSON ({_json_problem(exc)})") from None
            where = f"{path}:{line}"
            if isinstance(value, dict):
                yield Record(line, where, value)
            else:
                yield Record(line, where, None, f"{where}: expected a JSON object, got {type(value).__name__}")
            index = _SPACE.match(text, index).end()
            if text.startswith(",", index):
                index = _SPACE.match(text, index + 1).end()
            elif text.startswith("]", index):
                index += 1
                break
            else:
                _refuse_at(path, text, index, "expected ',' or ']' after an object of the array")
    if text[index:].strip():
        _refuse_at(path, text, _SPACE.match(text, index).end(), "more after the array's closing ']'")


def _refuse_at(path: Path, text: str, index: int, problem: str) -> None:
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    raise SleeptrainError(f"{path}:{line}: not valid JSON ({problem}, at column {column})")


def _csv_records(path: Path, delimiter: str) -> Iterator[Record]:
    # strict: a quote left open runs to the end of the file, which the lenient reader would take as one cell.
    reader = csv.reader(io.StringIO(_text(path), newline=""), delimiter=delimiter, strict=True)
    try:
        header = next((cells for cells in reader if any(cell.strip() for cell in cells)), None)
        if header is None:
            return
        names = [name.strip() for name in header]
        _check_header(path, reader.line_num, names)
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            # reader.line_num is the row's last line; a quoted cell may hold line breaks.
            line = reader.line_num - sum(cell.count("\n") for cell in cells)
            where = f"{path}:{line}"
            if len(cells) > len(names):
                problem = f"{len(cells)} values for the header's {len(names)} columns"
                yield Record(line, where, None, f"{where}: {problem} (a value holding the delimiter needs quotes)")
            else:
                yield Record(line, where, {name: cell for name, cell in zip(names, cells, strict=False) if cell != ""})
    except csv.Error as exc:
        raise SleeptrainError(f"{path}:{reader.line_num}: not valid CSV ({exc})") from None


def _check_header(path: Path, line: int, names: list[str]) -> None:
    where = f"{path}:{line}"
    if any(name.startswith(("{", "[")) for name in names):
        raise SleeptrainError(f"{where}: the header is JSON, not field names; a .json or .jsonl file is read as JSON")
    if "" in names:
        raise SleeptrainError(f"{where}: column {names.index('') + 1} of the header has no name")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise SleeptrainError(f"{where}: the header names column {repeated[0]!r} twice")


def _arrow_table_records(path: Path, kind: FileFormat) -> Iterator[Record]:
    # pyarrow (installed with `datasets`) directly: `datasets`' own Parquet loader would copy the file into
    # its cache first, and give rows no number to name in an error.
    import pyarrow
    import pyarrow.parquet

    try:
        if kind == "parquet":
            batches = pyarrow.parquet.ParquetFile(path).iter_batches(batch_size=1024)
        else:
            batches = _arrow_batches(path)
        number = 0
        for batch in batches:
            for row in batch.to_pylist():
                number += 1
                yield Record(number, f"{path} row {number}", _without_nulls(row))
    except (pyarrow.ArrowException, OSError) as exc:
        name = "Parquet" if kind == "parquet" else "Arrow"
        raise SleeptrainError(f"{path}: not a readable {name} file ({str(exc).splitlines()[0]})") from None


def _arrow_batches(path: Path) -> Iterator[Any]:
    """An Arrow file's record batches: `datasets` writes the stream format; the file format has a footer."""
    import pyarrow
    import pyarrow.ipc

    try:
        reader = pyarrow.ipc.open_stream(pyarrow.memory_map(str(path)))
    except pyarrow.ArrowInvalid:
        reader = pyarrow.ipc.open_file(pyarrow.memory_map(str(path)))
        yield from (reader.get_batch(index) for index in range(reader.num_record_batches))
        return
    yield from reader


def _saved_dataset_records(path: Path, split: str | None) -> Iterator[Record]:
    import datasets

    try:
        saved = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise SleeptrainError(f"{path}: not a readable saved dataset ({str(exc).splitlines()[0]})") from None
    if isinstance(saved, datasets.DatasetDict):
        name = split or "train"
        if name not in saved:
            names = ", ".join(saved)
            raise SleeptrainError(f"{path}: no split {name!r} (it holds {names}); the dataset's split key chooses one")
        saved = saved[name]
    elif split not in (None, "train"):
        raise SleeptrainError(f"{path}: split {split!r}: this saved dataset is one split, train (it has no others)")
    for number, row in enumerate(saved, start=1):
        yield Record(number, f"{path} row {number}", _without_nulls(row))


def _without_nulls(value: Any) -> Any:
    """A Parquet row as a JSON row would hold it: a column gives every row each field, null where the row has
    none, and a null field reads as an absent one."""
    if isinstance(value, dict):
        return {key: _without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value
