"""`sleeptrain memory ...` as a user runs it: a subprocess, JSON on stdout, errors as one line on stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.cli.test_cli import sleeptrain_import_times


def sleeptrain(*args: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "SLEEPTRAIN_CACHE_DIR": str(cwd / "cache")}
    return subprocess.run(
        [sys.executable, "-m", "sleeptrain", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


@pytest.fixture
def recipe(write_recipe, tiny_llama):
    return write_recipe(f"base_model: {tiny_llama}\noutput_dir: out\nhippocampus:\n  on_conflict: reject\n")


def test_ingest_json_reports_each_line_and_names_broken_ones(tmp_path, write_jsonl, recipe):
    path = write_jsonl(
        "memories.jsonl",
        [
            {"text": "Tomas Okafor lives in Rotterdam."},
            "not json",
            {"question": "Where does Tomas live?", "answer": "Lisbon"},
            {"text": "Actually, Tomas lives in Lisbon."},
        ],
    )
    store = tmp_path / "m.sqlite"
    done = sleeptrain(
        "memory", "ingest", str(path), "--store", str(store), "--json", "--recipe", str(recipe), cwd=tmp_path
    )
    assert done.returncode == 1  # a broken line makes the run fail, after the others are stored
    assert f"{path}:2: not valid JSON" in done.stderr, done.stderr and "Traceback" not in done.stderr
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert [a["line"] for a in answers] == [1, 3, 4]
    assert [a["decision"] for a in answers] == ["store", "reject", "correct"]
    assert answers[1]["contradicts"] == [answers[0]["id"]]
    assert set(answers[0]) >= {"id", "decision", "importance", "reasons", "contradicts"}

    listed = sleeptrain("memory", "list", "--store", str(store), "--status", "pending", "--json", cwd=tmp_path)
    assert [json.loads(line)["id"] for line in listed.stdout.splitlines()] == [answers[2]["id"]]
    assert listed.stderr == ""  # no library's import-time hints (bitsandbytes' kernels) without --debug
    shown = sleeptrain("memory", "show", answers[0]["id"], "--store", str(store), "--json", cwd=tmp_path)
    assert [e["kind"] for e in json.loads(shown.stdout)["events"]] == ["decision", "superseded"]
    forgot = sleeptrain("memory", "forget", answers[2]["id"], "--store", str(store), cwd=tmp_path)
    assert forgot.returncode == 0 and "forgot" in forgot.stdout


def test_inspecting_a_store_loads_no_training_library(tmp_path, isolated_cache):
    from sleeptrain.hippocampus import Memory, MemoryStore, Verdict

    store = tmp_path / "m.sqlite"
    with MemoryStore(store) as opened:
        memory = Memory(opened.new_id(), "Ada lives in Bergen.", "Where does Ada live?", "Bergen")
        opened.add(memory, Verdict("store", 0.7, ["test"]))

    for args in (["list", "--json"], ["show", memory.id, "--json"]):
        done, imported = sleeptrain_import_times(
            "memory", *args, "--store", str(store), cwd=tmp_path, cache_dir=isolated_cache
        )
        assert done.returncode == 0, done.stderr
        assert "Bergen" in done.stdout
        assert "sqlite3" in imported and not {"torch", "transformers", "datasets", "peft"} & imported, args


@pytest.mark.parametrize(
    "args, message",
    [
        (["memory", "show", "m-404", "--store", "{store}"], "no memory with id 'm-404'"),
        (["memory", "forget", "m-404", "--store", "{store}"], "no memory with id 'm-404'"),
        (["memory", "list", "--store", "{tmp}/missing.sqlite"], "no such memory store"),
        (["memory", "list", "--store", "{store}", "--status", "lost"], "--status 'lost'"),
        (["memory", "ingest", "{tmp}/missing.jsonl", "--store", "{store}"], "missing.jsonl: no such memory file"),
        (["memory", "ingest", "{tmp}/m.jsonl", "--store", "{tmp}/notes.txt"], "not a sleeptrain memory store"),
        (["memory", "ingest", "{tmp}/m.jsonl", "--store", "{store}", "--recipe", "{tmp}/bad.yaml"], "bad.yaml:3"),
    ],
)
def test_bad_input_is_one_error_line(tmp_path, write_jsonl, write_recipe, monkeypatch, capsys, args, message):
    from sleeptrain.cli import main
    from sleeptrain.hippocampus import MemoryStore

    store = tmp_path / "m.sqlite"
    with MemoryStore(store) as opened:
        opened.set_meta("kept", "yes")
    write_jsonl("m.jsonl", [{"text": "Ada lives in Bergen."}])
    (tmp_path / "notes.txt").write_text("my notes\n" * 200)
    write_recipe("output_dir: out\nhippocampus:\n  on_confict: reject\n", "bad.yaml")
    monkeypatch.setattr(sys, "argv", ["sleeptrain", *[a.format(store=store, tmp=tmp_path) for a in args]])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], err
    assert "Traceback" not in err
    with MemoryStore(store) as opened:  # nothing already stored is lost
        assert opened.get_meta("kept") == "yes"


def test_a_cache_folder_that_cannot_be_made_is_one_error_line_and_no_store_is_made(tmp_path, write_jsonl):
    (tmp_path / "cache").write_text("a file where the cache folder should be")
    memories = write_jsonl("memories.jsonl", [{"question": "Where was Ada born?", "answer": "Ada was born in Oslo."}])

    done = sleeptrain("memory", "ingest", str(memories), "--store", "memories.db", cwd=tmp_path)

    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: the cache folder (SLEEPTRAIN_CACHE_DIR) {tmp_path / 'cache'}: a file, not a folder "
        "(name a folder to write into)"
    ], done.stderr
    assert not (tmp_path / "memories.db").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["memory", "ingest", "{tmp}/missing.jsonl", "--store", "{store}"],
        ["memory", "list", "--store", "{tmp}/missing.sqlite"],
        ["memory", "show", "m-404", "--store", "{store}"],
        ["memory", "forget", "m-404", "--store", "{store}"],
    ],
)
def test_every_memory_command_takes_debug_after_its_name_and_shows_the_traceback(tmp_path, monkeypatch, args):
    from sleeptrain.cli import main
    from sleeptrain.errors import SleeptrainError
    from sleeptrain.hippocampus import MemoryStore

    store = tmp_path / "m.sqlite"
    MemoryStore(store).close()
    argv = [a.format(store=store, tmp=tmp_path) for a in args]
    monkeypatch.setattr(sys, "argv", ["sleeptrain", *argv, "--debug"])
    # With --debug the error is raised as it is, so that Python prints its traceback (not typer's usage error).
    with pytest.raises(SleeptrainError):
        main()


@pytest.mark.parametrize("quiet", [False, True])
def test_ingest_draws_a_bar_over_the_memories_unless_quiet(
    tmp_path, write_jsonl, recipe, monkeypatch, progress_bars, quiet
):
    from sleeptrain.cli import main

    memories = write_jsonl("m.jsonl", [{"text": f"Ada {i} lives in Bergen."} for i in range(3)])
    args = ["memory", "ingest", str(memories), "--store", str(tmp_path / "m.db"), "--recipe", str(recipe), "--json"]
    monkeypatch.setattr(sys, "argv", ["sleeptrain", *args, *(["-q"] if quiet else [])])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code in (0, None)
    assert progress_bars == ([] if quiet else [("judging memories", 3, 3)])


def test_a_missing_memory_file_makes_no_store(tmp_path, monkeypatch, capsys):
    from sleeptrain.cli import main

    monkeypatch.setattr(sys, "argv", ["sleeptrain", "memory", "ingest", "memoires.jsonl", "--store", "new.db"])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 1 and "memoires.jsonl: no such memory file" in capsys.readouterr().err
    assert not (tmp_path / "new.db").exists()
