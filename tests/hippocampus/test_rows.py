"""Memory files: each row becomes a memory or an error naming where it is, and the other rows still count,
in JSON Lines or any other format a data file may be in."""

from __future__ import annotations

import pyarrow
import pyarrow.parquet

from sleeptrain.hippocampus.rows import read_memory_rows


def test_a_memory_file_kept_as_csv_reads_row_by_row_with_its_broken_rows_named(tmp_path):
    path = tmp_path / "memories.csv"
    path.write_text(
        "text,question,answer,subject,timestamp\n"
        "Ada Lindqvist was born in Tromsø in 1962.,,,Ada,1733900000\n"
        ",Where does Ada work?,At the harbour,Ada,\n"
        "Ada plays the cello.,,,Ada,1733900000,extra\n"
        "Ada has a cat.,,,,yesterday\n"
    )

    born, works, too_long, cat = read_memory_rows(path)

    assert (born.line, born.memory.subject, born.memory.created_at) == (2, "Ada", 1733900000.0)
    assert born.memory.origin == f"{path}:2"
    assert (works.memory.question, works.memory.answer) == ("Where does Ada work?", "At the harbour")
    assert too_long.memory is None
    assert (
        too_long.error == f"{path}:4: 6 values for the header's 5 columns (a value holding the delimiter needs quotes)"
    )
    assert cat.error == f"{path}:5: field 'timestamp' must be unix seconds (a number)"


def test_a_memory_file_in_parquet_names_its_rows_by_number(tmp_path):
    path = tmp_path / "memories.parquet"
    rows = [{"text": "Ada Lindqvist lives in Bergen.", "id": "ada-1"}, {"text": None, "id": "ada-2"}]
    pyarrow.parquet.write_table(pyarrow.Table.from_pylist(rows), path)

    bergen, empty = read_memory_rows(path)

    assert (bergen.line, bergen.memory.id, bergen.memory.origin) == (1, "ada-1", f"{path} row 1")
    assert empty.memory is None and empty.error == f"{path} row 2: missing field 'text'"
