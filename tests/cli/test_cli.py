"""The `sleeptrain` command, run as a user runs it (a subprocess): a training run on a tiny model, and for
every bad input exactly one line on stderr, `error: ...`, naming the file, line or key, and no traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sleeptrain import __version__
from sleeptrain.config import load_recipe
from tests.conftest import QA_ROWS, REPO_ROOT

pytestmark = pytest.mark.timeout(180)


def cli_env(cache_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"COLUMNS", "LINES", "FORCE_COLOR", "TTY_COMPATIBLE"}}
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])),
        SLEEPTRAIN_CACHE_DIR=str(cache_dir),
        HF_HUB_OFFLINE="1",
        SLEEPTRAIN_THREADS="1",
        OMP_NUM_THREADS="1",
    )
    return env


def sleeptrain(*args: str, cwd: Path, cache_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sleeptrain", *args],
        cwd=cwd,
        env=cli_env(cache_dir),
        capture_output=True,
        text=True,
        timeout=170,
    )


def sleeptrain_import_times(*args: str, cwd: Path, cache_dir: Path) -> tuple[subprocess.CompletedProcess, set[str]]:
    """The command run under `python -X importtime`: its result and the modules it imported."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "sleeptrain", *args],
        cwd=cwd,
        env=cli_env(cache_dir),
        capture_output=True,
        text=True,
        timeout=120,
    )
    timings = (line for line in done.stderr.splitlines() if line.startswith("import time:"))
    return done, {line.rsplit("|", 1)[-1].strip() for line in timings}


def write_project(folder: Path, base_model: str, output_dir: str = "run") -> Path:
    """facts.jsonl and recipe.yaml (base_model, datasets, output_dir) in folder; returns the recipe."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "facts.jsonl").write_text("".join(json.dumps(row) + "\n" for row in QA_ROWS), encoding="utf-8")
    recipe = folder / "recipe.yaml"
    recipe.write_text(
        f"base_model: {base_model}\ndatasets:\n  - path: facts.jsonl\noutput_dir: {output_dir}\n",
        encoding="utf-8",
    )
    return recipe


# ------------------------------------------------------------------------------------------ a good run

LONG_FOLDER = "a-rather-long-folder-name-so-that-the-adapter-path-is-wider-than-a-terminal"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_models):
    """`sleeptrain train recipe.yaml --set ... -q` on the tiny llama: two steps, fp32, no anchor replay."""
    folder = tmp_path_factory.mktemp("cli-train")
    output_dir = folder / LONG_FOLDER / "run"
    recipe = write_project(folder, tiny_models("llama"), output_dir=str(output_dir))
    done = sleeptrain(
        "train",
        str(recipe),
        "--set",
        "max_steps=2",
        "--set",
        "bf16=false",
        "--set",
        "anchor_ratio=0",
        "-q",
        cwd=folder,
        cache_dir=folder / "cache",
    )
    return done, output_dir


def test_train_succeeds_and_reports_the_run(trained):
    done, output_dir = trained

    assert done.returncode == 0, done.stderr
    assert (output_dir / "adapter" / "adapter_config.json").exists()
    assert (output_dir / "metrics.json").exists()
    assert "Traceback" not in done.stdout + done.stderr
    # 3 facts, each in 6 question variants by default
    for label in ("trained 3 examples for", "adapter", "base model", "final loss", "tokens", "peak memory"):
        assert label in done.stdout
    # How many examples the model already writes token for token (two steps of a random model: none).
    assert "learnt (written token for token at their last 2 sightings): 0 of 3 examples" in done.stdout
    assert f"adapter: {output_dir / 'adapter'}" in done.stdout
    assert f"logs: {output_dir / 'logs'} (tensorboard --logdir {output_dir / 'logs'})" in done.stdout
    # What the run leaves, and nothing else (no empty checkpoint folder: nothing is checkpointed).
    assert {p.name for p in output_dir.iterdir()} == {"adapter", "metrics.json", "recipe.yaml", "logs"}
    # The recipe is saved as resolved, --set overrides applied.
    saved = load_recipe(output_dir / "recipe.yaml")
    assert (saved.max_steps, saved.bf16, saved.anchor_ratio) == (2, False, 0)


def test_train_prints_the_whole_adapter_path(trained):
    done, output_dir = trained
    assert str(output_dir / "adapter") in done.stdout


def test_full_fine_tuning_reports_the_model_it_wrote(tmp_path, tiny_llama, isolated_cache):
    recipe = write_project(tmp_path, tiny_llama)
    sets = ["adapter=full", "max_steps=1", "bf16=false", "anchor_ratio=0"]

    done = sleeptrain(
        "train", recipe.name, *[a for s in sets for a in ("--set", s)], "-q", cwd=tmp_path, cache_dir=isolated_cache
    )

    assert done.returncode == 0, done.stderr
    assert "model: run/model" in done.stdout and "adapter:" not in done.stdout
    assert (tmp_path / "run" / "model" / "config.json").exists()


def test_quiet_train_prints_no_raw_trainer_logs(trained):
    done, _ = trained
    assert "train_runtime" not in done.stdout


def test_quiet_train_shows_no_progress_bars(trained):
    done, _ = trained
    assert "Loading weights" not in done.stderr


# -------------------------------------------------------------------------------------------- bad input


def _append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)


def _write(path: Path, content: str | bytes) -> None:
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))


def _broken_json(folder: Path) -> None:
    _append(folder / "facts.jsonl", '{"question": "What does Dan like?", "answer": \n')


# Each case: how to spoil a good project (recipe.yaml lines 1-4 + facts.jsonl of 3 rows), the extra
# command-line arguments, and what the one error line must contain.
BAD_INPUTS = {
    "missing-recipe": (lambda f: (f / "recipe.yaml").unlink(), [], ["recipe.yaml: no such recipe file"]),
    "yaml-syntax-error": (
        lambda f: _write(f / "recipe.yaml", "datasets:\n  - path: facts.jsonl\n output_dir: run\n"),
        [],
        ["recipe.yaml:3: YAML syntax error"],
    ),
    "unknown-key": (
        lambda f: _append(f / "recipe.yaml", "lora_rank: 8\n"),
        [],
        ["recipe.yaml:5: unknown key 'lora_rank'", "did you mean 'lora_r'?"],
    ),
    "wrong-type": (
        lambda f: _append(f / "recipe.yaml", "lora_r: eight\n"),
        [],
        ["recipe.yaml:5: 'lora_r'", "'eight'"],
    ),
    "broken-jsonl-line": (_broken_json, [], ["facts.jsonl:4: not valid JSON"]),
    "empty-dataset": (lambda f: _write(f / "facts.jsonl", ""), [], ["facts.jsonl: no examples"]),
    "missing-field": (
        lambda f: _write(f / "facts.jsonl", '{"question": "q?"}\n'),
        [],
        ["facts.jsonl:1: missing field 'answer'"],
    ),
    "non-utf8-data": (
        lambda f: _write(f / "facts.jsonl", b'{"question": "q?", "answer": "a."}\n{"question": "caf\xe9?"}\n'),
        [],
        ["facts.jsonl:2: not valid UTF-8 (byte 0xe9)"],
    ),
    "qa-declared-as-chat": (lambda f: None, ["--set", "datasets.0.type=chat"], ["facts.jsonl:1:", "type: qa"]),
    "non-utf8-anchor-prompts": (
        lambda f: (
            _write(f / "anchors.jsonl", b'{"prompt": "Hi"}\n{"prompt": "caf\xe9"}\n'),
            _append(f / "recipe.yaml", "anchor_prompts: anchors.jsonl\n"),
        ),
        [],
        ["anchors.jsonl:2: not valid UTF-8 (byte 0xe9)"],
    ),
    "missing-anchor-prompts": (
        lambda f: _append(f / "recipe.yaml", "anchor_prompts: anchors.jsonl\n"),
        [],
        ["anchor_prompts: ", "anchors.jsonl: no such file"],
    ),
    "set-without-equals": (lambda f: None, ["--set", "lora_r"], ["--set 'lora_r': expected key=value"]),
    "set-unknown-key": (
        lambda f: None,
        ["--set", "lora_rr=3"],
        ["--set lora_rr=3: unknown key 'lora_rr'", "did you mean 'lora_r'?"],
    ),
    "output-dir-under-a-file": (
        lambda f: _write(f / "blocker", "a file, not a folder"),
        ["--set", "output_dir=blocker/run"],
        ["output_dir blocker/run: cannot create this folder"],
    ),
    "output-dir-is-a-file": (
        lambda f: _write(f / "blocker", "a file, not a folder"),
        ["--set", "output_dir=blocker"],
        ["output_dir blocker: a file, not a folder"],
    ),
    "axolotl-key-with-a-value": (
        lambda f: _append(f / "recipe.yaml", "sample_packing: true\ngptq: true\nwandb_project: runs\n"),
        [],
        [
            "recipe.yaml:6: 'gptq' is an Axolotl key sleeptrain does not use",
            "[also: 'wandb_project' (line 7)]",
        ],
    ),
    "unknown-optimizer": (
        lambda f: _append(f / "recipe.yaml", "optimizer: adamw_fancy\n"),
        [],
        ["recipe.yaml:5: 'optimizer': not an optimizer transformers knows (did you mean 'adamw_torch'?)"],
    ),
    "set-with-brackets": (
        lambda f: None,
        ["--set", "lora_target_modules[q_proj]"],
        ["--set 'lora_target_modules[q_proj]'"],
    ),
}


def _cases():
    for name, case in BAD_INPUTS.items():
        yield pytest.param(*case, id=name)


@pytest.mark.parametrize(("spoil", "args", "expected"), _cases())
def test_bad_input_is_one_error_line_without_traceback(spoil, args, expected, tmp_path, tiny_llama, isolated_cache):
    write_project(tmp_path, tiny_llama)
    spoil(tmp_path)

    done = sleeptrain("train", "recipe.yaml", *args, cwd=tmp_path, cache_dir=isolated_cache)

    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    for part in expected:
        assert part in lines[0]


DATA_ERRORS = [
    "broken-jsonl-line",
    "empty-dataset",
    "missing-field",
    "non-utf8-data",
    "qa-declared-as-chat",
    "non-utf8-anchor-prompts",
    "missing-anchor-prompts",
]


@pytest.mark.parametrize("name", DATA_ERRORS)
def test_bad_data_is_reported_before_the_training_libraries_load(name, tmp_path, tiny_llama, isolated_cache):
    write_project(tmp_path, tiny_llama)
    spoil, args, expected = BAD_INPUTS[name]
    spoil(tmp_path)

    done, imported = sleeptrain_import_times("train", "recipe.yaml", *args, cwd=tmp_path, cache_dir=isolated_cache)

    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and all(part in errors[0] for part in expected), done.stderr[-2000:]
    assert not {"torch", "peft"} & imported  # seconds of imports a mistyped file need not wait for


def test_the_axolotl_keys_set_aside_are_named_before_anything_else(tmp_path, tiny_llama, isolated_cache):
    write_project(tmp_path, tiny_llama)
    _append(tmp_path / "recipe.yaml", "sample_packing: true\nwandb_project:\n")
    _broken_json(tmp_path)  # stops the run right after the recipe is read

    done = sleeptrain("train", "recipe.yaml", cwd=tmp_path, cache_dir=isolated_cache)

    assert done.returncode == 1
    said = " ".join(done.stderr.split())  # rich wraps the log line to the terminal's width
    assert "recipe.yaml: Axolotl keys sleeptrain does not use, set aside: sample_packing (a batch is padded" in said
    assert said.index("set aside") < said.index("error: ")


def test_a_refused_key_beside_an_optimizer_is_reported_before_the_training_libraries_load(
    tmp_path, tiny_llama, isolated_cache
):
    write_project(tmp_path, tiny_llama)
    # The optimizer's check imports transformers; it waits until the rest of the recipe is valid.
    _append(tmp_path / "recipe.yaml", "optimizer: adamw_torch_fused\ngptq: true\n")

    done, imported = sleeptrain_import_times("train", "recipe.yaml", cwd=tmp_path, cache_dir=isolated_cache)

    assert done.returncode == 1 and "recipe.yaml:6: 'gptq'" in done.stderr
    assert not {"torch", "transformers"} & imported


def test_check_prints_the_recipe_a_run_reads_without_loading_a_model(tmp_path, tiny_llama, isolated_cache):
    write_project(tmp_path, tiny_llama)
    _append(tmp_path / "recipe.yaml", "sample_packing: true\nwarmup_steps: 3\n")

    done, imported = sleeptrain_import_times(
        "check", "recipe.yaml", "--set", "lora_r=4", cwd=tmp_path, cache_dir=isolated_cache
    )

    assert done.returncode == 0, done.stderr[-2000:]
    assert "recipe.yaml: a valid recipe; 3 examples from 1 data file, 120 anchor prompts" in " ".join(
        done.stderr.split()
    )
    (tmp_path / "resolved.yaml").write_text(done.stdout, encoding="utf-8")
    resolved = load_recipe(tmp_path / "resolved.yaml")
    assert resolved.lora_r == 4 and resolved.warmup_steps == 3 and resolved.num_epochs == 14  # a default, filled in
    assert not {"torch", "transformers"} & imported


def test_a_quiet_check_prints_only_the_recipe(tmp_path, tiny_llama, isolated_cache):
    write_project(tmp_path, tiny_llama)
    _append(tmp_path / "recipe.yaml", "sample_packing: true\n")  # set aside: an info line without -q

    done = sleeptrain("check", "recipe.yaml", "-q", cwd=tmp_path, cache_dir=isolated_cache)

    assert done.returncode == 0 and done.stderr == ""
    assert "lora_r: 16" in done.stdout.splitlines()


def test_a_recipe_without_datasets_is_checked_as_sleep_reads_it(tmp_path, isolated_cache):
    (tmp_path / "sleep.yaml").write_text("output_dir: runs/sleep\nsleep:\n  replay_ratio: 2.0\n")

    done = sleeptrain("check", "sleep.yaml", cwd=tmp_path, cache_dir=isolated_cache)

    assert done.returncode == 0, done.stderr
    assert "replay_ratio: 2.0" in done.stdout
    assert "sleep.yaml: a valid recipe; no datasets, as `sleeptrain sleep` reads it" in " ".join(done.stderr.split())
    bad = sleeptrain("check", "sleep.yaml", "--set", "sleep.replay_ratio=-1", cwd=tmp_path, cache_dir=isolated_cache)
    assert bad.returncode == 1 and "sleep.replay_ratio" in bad.stderr


def test_check_with_tokens_renders_the_examples_with_the_base_models_tokenizer(tmp_path, tiny_llama, isolated_cache):
    write_project(tmp_path, tiny_llama)

    done = sleeptrain("check", "recipe.yaml", "--tokens", cwd=tmp_path, cache_dir=isolated_cache)

    assert done.returncode == 0, done.stderr[-2000:]
    said = " ".join(done.stderr.split())
    assert f"tokens ({Path(tiny_llama).name}'s tokenizer): 3 examples in " in said
    assert "of them trained; an epoch trains about" in said and "(sequence_len 512)" in said
    # Two tokens fewer than the longest phrasing: that one is cut, and said to be.
    longest = int(said.split(" tokens (sequence_len 512)")[0].rsplit(", ", 1)[1])
    short = sleeptrain(
        "check",
        "recipe.yaml",
        "--tokens",
        "--set",
        f"sequence_len={longest - 2}",
        cwd=tmp_path,
        cache_dir=isolated_cache,
    )
    assert short.returncode == 0, short.stderr[-2000:]
    said = " ".join(short.stderr.split())
    assert f"sequence_len={longest - 2} cut" in said and f"{longest - 2} tokens (sequence_len {longest - 2})" in said


def test_check_answers_bad_data_as_train_does(tmp_path, tiny_llama, isolated_cache):
    write_project(tmp_path, tiny_llama)
    _broken_json(tmp_path)

    done = sleeptrain("check", "recipe.yaml", cwd=tmp_path, cache_dir=isolated_cache)

    assert done.returncode == 1 and done.stderr.strip().splitlines() == [
        line for line in done.stderr.strip().splitlines() if line.startswith("error: ")
    ]
    assert "facts.jsonl:4: not valid JSON" in done.stderr


def test_check_reads_the_test_datasets_as_train_would(tmp_path, tiny_llama, isolated_cache):
    write_project(tmp_path, tiny_llama)
    (tmp_path / "other_words.jsonl").write_text('{"question": "Who is Ann?", "answer": "A pilot."}\n{"question": 1}\n')
    _append(tmp_path / "recipe.yaml", "test_datasets: other_words.jsonl\n")

    broken = sleeptrain("check", "recipe.yaml", cwd=tmp_path, cache_dir=isolated_cache)
    (tmp_path / "other_words.jsonl").write_text('{"question": "Who is Ann?", "answer": "A pilot."}\n')
    done = sleeptrain("check", "recipe.yaml", cwd=tmp_path, cache_dir=isolated_cache)

    assert broken.returncode == 1 and "other_words.jsonl:2:" in broken.stderr
    assert done.returncode == 0, done.stderr
    assert "3 examples (1 more held out by test_datasets) from 1 data file" in " ".join(done.stderr.split())


def test_debug_shows_the_traceback(tmp_path, tiny_llama, isolated_cache):
    recipe = write_project(tmp_path, tiny_llama)
    _broken_json(tmp_path)

    done = sleeptrain("--debug", "train", recipe.name, cwd=tmp_path, cache_dir=isolated_cache)

    assert done.returncode != 0
    assert "Traceback" in done.stderr
    assert "SleeptrainError: facts.jsonl:4: not valid JSON" in done.stderr


def test_ctrl_c_during_training_exits_130_and_says_so(tmp_path, tiny_llama, isolated_cache):
    # A script that chains `sleeptrain train R.yaml && next-step` must not go on after an interrupted run.
    recipe = write_project(tmp_path, tiny_llama)
    long_run = ["--set", "num_epochs=2000", "--set", "learnt_after=0", "--set", "bf16=false"]
    stderr = tmp_path / "stderr.txt"
    with stderr.open("w") as sink:
        child = subprocess.Popen(
            [sys.executable, "-m", "sleeptrain", "train", recipe.name, *long_run],
            cwd=tmp_path,
            env=cli_env(isolated_cache),
            stdout=subprocess.DEVNULL,
            stderr=sink,
            # As from a terminal: a test run started in the background (`pytest &` in a script) ignores SIGINT,
            # and its children inherit that, so Python would never raise KeyboardInterrupt in them.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        deadline = time.monotonic() + 120
        while "loss=" not in stderr.read_text() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)  # until the progress bar shows training steps
        assert child.poll() is None, stderr.read_text()[-2000:]
        child.send_signal(signal.SIGINT)
        returncode = child.wait(timeout=60)

    written = stderr.read_text()
    assert returncode == 130, written[-2000:]
    assert written.rstrip().endswith("interrupted")
    assert "Traceback" not in written
    assert not (tmp_path / "run" / "adapter").exists()
    # What the interrupted run leaves: its losses so far, no empty checkpoint folder.
    assert {p.name for p in (tmp_path / "run").iterdir()} == {"logs"}


def test_a_quickstart_folder_that_cannot_be_made_is_one_error_line(tmp_path, isolated_cache):
    (tmp_path / "blocker").write_text("a file, not a folder")

    done = sleeptrain("quickstart", "--out", "blocker/qs", cwd=tmp_path, cache_dir=isolated_cache)

    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: --out blocker/qs: cannot create this folder (Not a directory)"
    ], done.stderr
    assert not (isolated_cache / "models").exists()  # failed before the default model was fetched


def test_a_cache_folder_that_cannot_be_made_is_one_error_line_naming_its_setting(tmp_path, write_recipe):
    (tmp_path / "blocker").write_text("a file, not a folder")
    recipe = write_recipe("datasets:\n  - path: facts.jsonl\noutput_dir: out\n")
    (tmp_path / "facts.jsonl").write_text('{"question": "Q?", "answer": "A."}\n')
    cache = tmp_path / "blocker" / "cache"

    for args in (("train", str(recipe)), ("quickstart", "--out", "qs")):
        done = sleeptrain(*args, cwd=tmp_path, cache_dir=cache)

        assert done.returncode == 1, args
        assert done.stderr.strip().splitlines() == [
            f"error: the cache folder (SLEEPTRAIN_CACHE_DIR) {cache}: cannot create this folder (Not a directory)"
        ], done.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "qs").exists()  # no output folder left behind


def test_a_cache_folder_that_cannot_be_made_is_found_before_torch_is_imported(tmp_path, write_recipe):
    (tmp_path / "blocker").write_text("a file, not a folder")
    recipe = write_recipe("datasets:\n  - path: facts.jsonl\noutput_dir: out\n")
    (tmp_path / "facts.jsonl").write_text('{"question": "Q?", "answer": "A."}\n')
    for verb in (["train", str(recipe)], ["quickstart", "--out", "qs"]):
        # The command run in-process under a wrapper that reports, once it has exited, what it imported.
        script = (
            "import runpy, sys\n"
            f"sys.argv = ['sleeptrain', *{verb!r}]\n"
            "try:\n    runpy.run_module('sleeptrain', run_name='__main__')\n"
            "except SystemExit as exit:\n    print(exit.code, 'torch' in sys.modules)\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", script],
            cwd=tmp_path,
            env=cli_env(tmp_path / "blocker" / "cache"),
            capture_output=True,
            text=True,
            timeout=170,
        )
        assert done.stdout.split() == ["1", "False"], (verb, done.stdout, done.stderr)


# ------------------------------------------------------------------------------------------ the command


def test_version(tmp_path, isolated_cache):
    done = sleeptrain("--version", cwd=tmp_path, cache_dir=isolated_cache)
    assert done.returncode == 0
    assert done.stdout.strip() == f"sleeptrain {__version__}"


def test_help_lists_the_verbs(tmp_path, isolated_cache):
    done = sleeptrain("--help", cwd=tmp_path, cache_dir=isolated_cache)
    assert done.returncode == 0
    assert "train" in done.stdout and "quickstart" in done.stdout


def test_a_usage_error_shows_the_usage_and_exits_2(tmp_path, isolated_cache):
    done = sleeptrain("train", cwd=tmp_path, cache_dir=isolated_cache)
    assert done.returncode == 2
    assert "Usage:" in done.stderr


def test_a_finished_command_ends_the_process_group_it_ran_in(tmp_path):
    # Under torchrun or accelerate launch: left to the interpreter's exit, gloo's threads can abort the process
    # after the run saved (tests/workflows/test_distributed.py launches such runs).
    import torch.distributed as dist

    from sleeptrain.cli.app import _leave_the_process_group

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    assert dist.is_initialized()

    _leave_the_process_group()

    assert not dist.is_initialized()
    _leave_the_process_group()  # and nothing to do where no group is left
