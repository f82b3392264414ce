"""The `sleeptrain` command and its error handling."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from sleeptrain import __version__
from sleeptrain.cli.options import DebugOption, QuietOption
from sleeptrain.cli.output import configure_output, console, errors
from sleeptrain.errors import SleeptrainError

app = typer.Typer(
    name="sleeptrain",
    help="Turn what a language model is told into what it knows: memories become weights.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_DEBUG = {"on": False}


def _version(value: bool) -> None:
    if value:
        console.print(f"sleeptrain {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and library logs.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    _DEBUG["on"] = debug


def debug_enabled() -> bool:
    return _DEBUG["on"] or "--debug" in sys.argv


RecipeArgument = Annotated[Path, typer.Argument(help="The recipe YAML file.")]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a recipe key: --set learning_rate=2e-4 (dotted keys for sections)."),
]


def _start_command(debug: bool, quiet: bool) -> None:
    _DEBUG["on"] = _DEBUG["on"] or debug
    configure_output(debug=debug_enabled(), quiet=quiet)


@app.command()
def train(
    recipe: RecipeArgument,
    set_: SetOption = None,
    quiet: QuietOption = False,
    debug: DebugOption = False,
) -> None:
    """Fine-tune a base model on a recipe's datasets (LoRA, QLoRA or full)."""
    from sleeptrain.cli.train import load_train_recipe, run_train

    _start_command(debug, quiet)  # first: loading the recipe may log (Axolotl keys set aside)
    parsed = load_train_recipe(recipe, set_ or [])
    run_train(parsed, quiet)


@app.command()
def check(
    recipe: RecipeArgument,
    set_: SetOption = None,
    tokens: Annotated[
        bool,
        typer.Option(
            "--tokens",
            help="Also render every example with the base model's tokenizer: tokens, the longest, what "
            "sequence_len cuts.",
        ),
    ] = False,
    quiet: QuietOption = False,
    debug: DebugOption = False,
) -> None:
    """Check a recipe and its data files without training; print the recipe as a run reads it."""
    from sleeptrain.cli.train import run_check

    _start_command(debug, quiet)
    run_check(recipe, set_ or [], quiet, tokens)


@app.command()
def quickstart(
    out: Annotated[Path, typer.Option("--out", help="Where the run and summary.json go.")] = Path(
        "sleeptrain-quickstart"
    ),
    quiet: QuietOption = False,
    debug: DebugOption = False,
) -> None:
    """Teach the default model facts about fictional people; ask before and after."""
    from sleeptrain.cli.quickstart import run_quickstart

    _start_command(debug, quiet)
    run_quickstart(out, quiet)


@app.command()
def sleep(
    store: Annotated[Path, typer.Option("--store", help="The memory store (SQLite file).")],
    recipe: Annotated[Path, typer.Option("--recipe", help="The recipe YAML file (no datasets needed).")],
    if_needed: Annotated[
        bool, typer.Option("--if-needed", help="Sleep only if the pending memories' pressure reaches the threshold.")
    ] = False,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a recipe key: --set sleep.replay_ratio=2 (dotted keys for sections)."),
    ] = None,
    quiet: QuietOption = False,
    debug: DebugOption = False,
) -> None:
    """Consolidate the pending memories into the next adapter version (output_dir/adapters/vN, latest)."""
    from sleeptrain.cli.sleep import load_sleep_recipe, run_sleep

    _start_command(debug, quiet)
    parsed = load_sleep_recipe(recipe, set_ or [])
    run_sleep(store, parsed, if_needed, quiet)


def _register_memory_commands() -> None:
    # cli/memory.py imports only typer and rich at module level; its commands import the workflows when run.
    from sleeptrain.cli.memory import memory_app

    app.add_typer(memory_app, name="memory")


_register_memory_commands()


def main() -> None:
    """Entry point: run the app; a SleeptrainError is one line on stderr and exit 1 (2 for usage)."""
    try:
        # Outside standalone mode typer does not exit: it returns the exit code of an explicit Exit, and answers
        # Ctrl-C inside a command with 130 instead of raising KeyboardInterrupt. A returned code must become
        # the process's, or an interrupted run would exit 0 as if it had finished.
        code = app(standalone_mode=False)
    except SleeptrainError as exc:
        if debug_enabled():
            raise
        errors.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        errors.print("interrupted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        errors.print("aborted")
        sys.exit(1)
    except Exception as exc:  # noqa: BLE001 - the last line of defence against a traceback for users
        # Usage errors (missing argument, unknown option) come from the click that typer bundles, which is
        # not always the installed `click`: recognise them by what they can do.
        if hasattr(exc, "show") and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            sys.exit(exc.exit_code)
        if debug_enabled():
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        errors.print(
            f"[bold red]error:[/] {type(exc).__name__}: {escape(message)} (run with --debug for the traceback)",
            markup=True,
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)
    if code == 130:
        errors.print("interrupted")
    _leave_the_process_group()
    sys.exit(code if isinstance(code, int) else 0)


def _leave_the_process_group() -> None:
    """End the process group of a run under `accelerate launch` or torchrun before the interpreter does.

    Left to the interpreter's teardown, gloo's worker threads can outlive it: one CPU process in a few runs
    ended in "terminate called without an active exception" (SIGABRT) after saving, and its launcher failed
    the whole run (pytorch/pytorch#190489). Only after a command has finished: ending the group while another
    process may still wait in a collective could leave it hanging. Nothing to do where no group was started."""
    distributed = sys.modules.get("torch.distributed")
    if distributed is None or not distributed.is_available() or not distributed.is_initialized():
        return
    from accelerate import PartialState

    PartialState().destroy_process_group()
