"""A data file's rows are read as JSON objects whatever its format (JSON Lines, a JSON array, CSV, TSV,
Parquet), each named by the line it starts on, and a row or file that cannot be read is refused in one line
that says where and why."""

import json

import pyarrow
import pyarrow.parquet
import pytest

from sleeptrain.errors import SleeptrainError
from sleeptrain.records import data_files_in, file_format, is_saved_dataset, json_object_line, read_records

ROWS = [{"question": "Where was Ann born?", "answer": "Lyon"}, {"question": "Ann's job?", "answer": "Baker"}]


def rows_and_lines(path, declared=None, split=None):
    return [(record.number, record.object()) for record in read_records(path, declared, split)]


def first_error(path, declared=None, split=None) -> str:
    with pytest.raises(SleeptrainError) as caught:
        for record in read_records(path, declared, split):
            record.object()
    return str(caught.value).replace(f"{path.parent}/", "")


# --------------------------------------------------------------------------------------- one JSON line


def test_a_line_is_read_as_its_object_whatever_its_line_ending():
    assert json_object_line(b'{"question": "Q", "answer": "A"}\r\n', "f.jsonl:1") == {"question": "Q", "answer": "A"}


def test_a_byte_order_mark_at_the_start_of_a_file_is_not_part_of_its_first_object():
    # What Notepad and spreadsheet exports write as a UTF-8 file's first bytes.
    assert json_object_line(b'\xef\xbb\xbf{"question": "Q", "answer": "A"}\r\n', "f.jsonl:1") == {
        "question": "Q",
        "answer": "A",
    }


HINT = (
    "; the file should be JSON Lines (one JSON object per line) or a JSON array of objects; a .csv, .tsv, .parquet,"
    " .arrow or .txt file is read as its suffix says"
)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"question": "caf\xe9"}\n', "f.jsonl:3: not valid UTF-8 (byte 0xe9)"),
        (
            b'{"question": "Q",}\n',
            "f.jsonl:3: not valid JSON (Expecting property name enclosed in double quotes at column 18)",
        ),
        (b'{"question": "Q\n', "f.jsonl:3: not valid JSON (Unterminated string starting at column 14)"),
        (b'["question", "answer"]\n', "f.jsonl:3: expected a JSON object, got list" + HINT),
        # The first line of a CSV file:
        (b"question,answer\r\n", "f.jsonl:3: not valid JSON (Expecting value at column 1)" + HINT),
    ],
)
def test_a_bad_line_is_named_with_what_is_wrong_with_it(raw, message):
    with pytest.raises(SleeptrainError) as caught:
        json_object_line(raw, "f.jsonl:3")
    assert str(caught.value) == message


# ------------------------------------------------------------------------------------- formats by suffix


@pytest.mark.parametrize(
    ("name", "declared", "expected"),
    [
        ("facts.jsonl", None, "json"),
        ("facts.json", None, "json"),
        ("facts", None, "json"),
        ("facts.CSV", None, "csv"),
        ("facts.tsv", None, "tsv"),
        ("train-00000-of-00001.parquet", None, "parquet"),
        ("data-00000-of-00001.arrow", None, "arrow"),
        ("notes.txt", None, "text"),
        ("facts.txt", "csv", "csv"),  # a dataset's ds_type says what the suffix does not
    ],
)
def test_the_format_comes_from_the_suffix_or_the_datasets_ds_type(tmp_path, name, declared, expected):
    assert file_format(tmp_path / name, declared) == expected


def test_json_lines_rows_are_named_by_their_line_past_blank_ones(tmp_path):
    path = tmp_path / "facts.jsonl"
    path.write_text("\n" + json.dumps(ROWS[0]) + "\n\n" + json.dumps(ROWS[1]) + "\n")
    assert rows_and_lines(path) == [(2, ROWS[0]), (4, ROWS[1])]


def test_a_bad_json_line_is_a_row_with_its_error_and_the_rows_after_it_still_read(tmp_path):
    # Memory files count the rows that read; training data stops at the first that does not.
    path = tmp_path / "facts.jsonl"
    path.write_text(json.dumps(ROWS[0]) + '\n{"question": \n' + json.dumps(ROWS[1]) + "\n")
    records = list(read_records(path))
    assert [(r.number, r.row is not None) for r in records] == [(1, True), (2, False), (3, True)]
    assert records[1].error == f"{path}:2: not valid JSON (Expecting value at column 14)"


# ------------------------------------------------------------------------------------------ JSON arrays


def test_a_json_array_is_read_as_its_objects_each_named_by_the_line_it_starts_on(tmp_path):
    # As Alpaca's alpaca_data.json and json.dump(rows, f, indent=2) write them, whatever the suffix.
    for name in ("alpaca_data.json", "facts.jsonl"):
        path = tmp_path / name
        path.write_text(json.dumps(ROWS, indent=2, ensure_ascii=False))
        assert rows_and_lines(path) == [(2, ROWS[0]), (6, ROWS[1])]


def test_a_compact_json_array_with_a_byte_order_mark(tmp_path):
    path = tmp_path / "facts.json"
    path.write_bytes(b"\xef\xbb\xbf  " + json.dumps(ROWS).encode())
    assert rows_and_lines(path) == [(1, ROWS[0]), (1, ROWS[1])]


@pytest.mark.parametrize("content", ["[]", " [ \n ] \n"])
def test_an_empty_json_array_has_no_rows(tmp_path, content):
    path = tmp_path / "facts.json"
    path.write_text(content)
    assert rows_and_lines(path) == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            '[\n  {"question": "Q", "answer": "A"},\n  {"question": "Q", "answer": }\n]',
            "3: not valid JSON (Expecting value",
        ),
        ('[\n  {"question": "Q", "answer": "A"}\n  {"question": "Q"}\n]', "3: not valid JSON (expected ',' or ']'"),
        ('[\n  {"question": "Q", "answer": "A"},\n  ["Q", "A"]\n]', "3: expected a JSON object, got list"),
        ('[\n  {"question": "Q", "answer": "A"},\n\n]\n', "4: not valid JSON (Expecting value at column 1)"),
        ('[{"question": "Q", "answer": "A"}]\n]\n', "2: not valid JSON (more after the array's closing ']'"),
        ('[\n  {"question": "Q", "answer": "A"},\n  {"question": "caf\xe9"}\n]', "3: not valid UTF-8 (byte 0xe9)"),
    ],
    ids=["syntax", "missing-comma", "not-an-object", "trailing-comma", "after-the-end", "not-utf8"],
)
def test_a_broken_json_array_names_the_line_of_the_fault(tmp_path, content, message):
    path = tmp_path / "facts.json"
    path.write_bytes(content.encode("latin-1"))
    assert first_error(path).startswith(f"facts.json:{message}")


def test_one_object_over_several_lines_is_named_as_such_with_where_its_rows_may_be(tmp_path):
    path = tmp_path / "squad.json"
    path.write_text(json.dumps({"version": "1.1", "data": ROWS}, indent=2))
    assert first_error(path) == (
        "squad.json: one JSON object over several lines, not rows (its rows may be the list under 'data': write that"
        " list as the file)" + HINT
    )


# ------------------------------------------------------------------------------------------- CSV, TSV


def test_csv_rows_are_objects_of_the_headers_fields_and_an_empty_cell_is_an_absent_field(tmp_path):
    path = tmp_path / "facts.csv"
    # As a spreadsheet saves it: a byte-order mark, CRLF, a quoted cell with a comma, one with a line break.
    path.write_bytes(
        "\ufeffquestion, answer ,subject\r\n"
        'Where was Ann born?,"Lyon, France",Ann\r\n'
        "\r\n"
        'What did Ann write?,"A poem\r\nin two lines",\r\n'
        "Ann's job?,Baker,Ann\r\n".encode()
    )
    assert rows_and_lines(path) == [
        (2, {"question": "Where was Ann born?", "answer": "Lyon, France", "subject": "Ann"}),
        (4, {"question": "What did Ann write?", "answer": "A poem\r\nin two lines"}),
        (6, {"question": "Ann's job?", "answer": "Baker", "subject": "Ann"}),
    ]


def test_tsv_rows_are_split_at_tabs(tmp_path):
    path = tmp_path / "facts.tsv"
    path.write_text("question\tanswer\nWhere was Ann born?\tLyon, France\n")
    assert rows_and_lines(path) == [(2, {"question": "Where was Ann born?", "answer": "Lyon, France"})]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("question,answer\nQ,A\nWhere?,Lyon, France\n", "facts.csv:3: 3 values for the header's 2 columns"),
        ("question,,answer\nQ,x,A\n", "facts.csv:1: column 2 of the header has no name"),
        ("\n\nquestion,answer,question\nQ,A,Q\n", "facts.csv:3: the header names column 'question' twice"),
        ("question,answer,question\nQ,A,Q\n", "facts.csv:1: the header names column 'question' twice"),
        ('{"question": "Q", "answer": "A"}\n', "facts.csv:1: the header is JSON, not field names"),
        ('question,answer\nQ,A\n"Where?,Lyon\n', "facts.csv:3: not valid CSV (unexpected end of data)"),
        ("question,answer\nQ,A\nQ,caf\xe9\n", "facts.csv:3: not valid UTF-8 (byte 0xe9)"),
    ],
)
def test_a_broken_csv_file_names_the_line_of_the_fault(tmp_path, content, message):
    path = tmp_path / "facts.csv"
    path.write_bytes(content.encode("latin-1"))
    assert first_error(path).startswith(message)


# ------------------------------------------------------------------------------------------ plain text


def test_a_text_file_is_a_row_per_line_as_datasets_text_loader_reads_it(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"Ann Varga keeps bees.\r\n\nBo sails \f on Sundays.\n")
    assert rows_and_lines(path) == [(1, {"text": "Ann Varga keeps bees."}), (3, {"text": "Bo sails \f on Sundays."})]


def test_a_txt_file_of_json_lines_is_read_as_json_lines_unless_ds_type_says_text(tmp_path):
    path = tmp_path / "facts.txt"
    path.write_text(json.dumps(ROWS[0]) + "\n")
    assert rows_and_lines(path) == [(1, ROWS[0])]
    assert rows_and_lines(path, "text") == [(1, {"text": json.dumps(ROWS[0])})]


# --------------------------------------------------------------------------------------------- Parquet


def test_parquet_rows_are_named_by_their_number_and_a_null_field_is_an_absent_one(tmp_path):
    path = tmp_path / "train.parquet"
    turns = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    table = pyarrow.Table.from_pylist([{"messages": turns, "subject": None}, {"messages": turns, "subject": "Ann"}])
    pyarrow.parquet.write_table(table, path)
    records = list(read_records(path))
    assert [(r.number, r.where, r.object()) for r in records] == [
        (1, f"{path} row 1", {"messages": turns}),
        (2, f"{path} row 2", {"messages": turns, "subject": "Ann"}),
    ]


@pytest.mark.parametrize("writer", ["stream", "file"])
def test_arrow_files_in_either_of_arrows_forms_are_read_row_by_row(tmp_path, writer):
    import pyarrow.ipc

    path = tmp_path / "data-00000-of-00001.arrow"
    table = pyarrow.Table.from_pylist(ROWS)
    open_writer = pyarrow.ipc.new_stream if writer == "stream" else pyarrow.ipc.new_file
    with open_writer(str(path), table.schema) as sink:
        sink.write_table(table)
    assert [(r.where, r.object()) for r in read_records(path)] == [
        (f"{path} row 1", ROWS[0]),
        (f"{path} row 2", ROWS[1]),
    ]


def test_a_file_that_is_not_parquet_is_refused_in_one_line(tmp_path):
    path = tmp_path / "train.parquet"
    path.write_text(json.dumps(ROWS[0]) + "\n")
    message = first_error(path)
    assert message.startswith("train.parquet: not a readable Parquet file (") and "\n" not in message


# ------------------------------------------------------------------------------------- saved datasets


def test_a_dataset_saved_with_save_to_disk_is_read_row_by_row(tmp_path):
    import datasets

    datasets.Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "facts"))

    assert is_saved_dataset(tmp_path / "facts")
    records = list(read_records(tmp_path / "facts"))
    assert [(r.number, r.where, r.object()) for r in records] == [
        (1, f"{tmp_path}/facts row 1", ROWS[0]),
        (2, f"{tmp_path}/facts row 2", ROWS[1]),
    ]
    # A single Dataset, not a DatasetDict: one split, train, as a data file is.
    assert len(list(read_records(tmp_path / "facts", split="train"))) == 2
    assert first_error(tmp_path / "facts", split="test") == (
        "facts: split 'test': this saved dataset is one split, train (it has no others)"
    )


def test_a_saved_dataset_dicts_split_is_chosen_by_name_train_by_default(tmp_path):
    import datasets

    splits = {"train": datasets.Dataset.from_list(ROWS[:1]), "test": datasets.Dataset.from_list(ROWS[1:])}
    datasets.DatasetDict(splits).save_to_disk(str(tmp_path / "facts"))

    assert [r.object() for r in read_records(tmp_path / "facts")] == ROWS[:1]
    assert [r.object() for r in read_records(tmp_path / "facts", split="test")] == ROWS[1:]
    assert first_error(tmp_path / "facts", split="validation") == (
        "facts: no split 'validation' (it holds train, test); the dataset's split key chooses one"
    )


def test_a_data_file_is_one_split_named_train(tmp_path):
    path = tmp_path / "facts.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n")
    assert rows_and_lines(path, split="train") == [(1, ROWS[0])]
    assert first_error(path, split="test") == (
        "facts.jsonl: split 'test': a data file is one split, train (give the file it is in)"
    )


# ------------------------------------------------------------------------------------- compressed files

JSON_LINES = "".join(json.dumps(row) + "\n" for row in ROWS)


@pytest.mark.parametrize(
    ("name", "text", "lines", "kind"),
    [
        ("facts.jsonl.gz", "\n" + JSON_LINES, [2, 3], "json"),
        ("facts.json.bz2", f"\n[\n{json.dumps(ROWS[0])},\n{json.dumps(ROWS[1])}\n]\n", [3, 4], "json"),
        ("facts.csv.xz", "\nquestion,answer\nWhere was Ann born?,Lyon\nAnn's job?,Baker\n", [3, 4], "csv"),
    ],
    ids=["jsonl.gz", "json-array.bz2", "csv.xz"],
)
def test_a_compressed_data_file_reads_as_the_format_before_its_compression(tmp_path, name, text, lines, kind):
    import bz2
    import gzip
    import lzma

    path = tmp_path / name
    opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}[path.suffix]
    with opener(path, "wt", encoding="utf-8") as handle:
        handle.write(text)

    # Each row named by its line in the decompressed text.
    assert rows_and_lines(path) == list(zip(lines, ROWS, strict=True))
    assert file_format(path) == kind


def test_a_plain_text_file_compressed_is_a_note_per_line(tmp_path):
    import gzip

    path = tmp_path / "notes.txt.gz"
    path.write_bytes(gzip.compress(b"Ann keeps bees.\n\nBo sails.\n"))
    assert rows_and_lines(path) == [(1, {"text": "Ann keeps bees."}), (3, {"text": "Bo sails."})]


def test_a_damaged_or_mislabelled_compressed_file_is_one_line_that_names_it(tmp_path):
    import gzip

    whole = gzip.compress(JSON_LINES.encode() * 200)
    (tmp_path / "cut.jsonl.gz").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "plain.jsonl.gz").write_text(JSON_LINES)

    assert first_error(tmp_path / "cut.jsonl.gz").startswith("cut.jsonl.gz: not a readable .gz file (")
    assert first_error(tmp_path / "plain.jsonl.gz").startswith("plain.jsonl.gz: not a readable .gz file (")


def test_a_folder_of_compressed_data_files_names_them(tmp_path):
    import gzip

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl.gz").write_bytes(gzip.compress(JSON_LINES.encode()))
    assert data_files_in(tmp_path) == [tmp_path / "data" / "train.jsonl.gz"]
