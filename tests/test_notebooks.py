"""The Colab notebooks in notebooks/ stay in step with the package: their Python compiles, what they import
from sleeptrain exists, and every `!sleeptrain ...` line names a command and options the CLI has. (Running
them end to end is the quickstart's and train's own tests, on tiny models; a notebook clones a repository
and installs it, which a test cannot.)"""

from __future__ import annotations

import ast
import importlib
import json
import shlex
from pathlib import Path

import pytest
from typer.main import get_command

from sleeptrain.cli.app import app

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def _code_cells(notebook: Path) -> list[str]:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "code"]


def _python(cell: str) -> str:
    # IPython's shell (!) and magic (%) lines are not Python: blank them, keeping the line numbers.
    return "\n".join("" if line.lstrip().startswith(("!", "%")) else line for line in cell.splitlines())


def _shell_lines(cell: str) -> list[str]:
    return [line.lstrip()[1:].strip() for line in cell.splitlines() if line.lstrip().startswith("!")]


def test_there_is_a_notebook():
    assert NOTEBOOKS


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_the_python_compiles_and_its_sleeptrain_imports_exist(notebook):
    imported = 0
    for number, cell in enumerate(_code_cells(notebook)):
        tree = ast.parse(_python(cell), filename=f"{notebook.name}, code cell {number}")
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sleeptrain"):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name), f"{notebook.name}: {node.module} has no {alias.name}"
                    imported += 1
    assert imported  # the notebook shows the library, not only the CLI


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_every_sleeptrain_command_it_runs_exists_with_those_options(notebook):
    cli = get_command(app)
    commands = [
        shlex.split(line)[1:]
        for cell in _code_cells(notebook)
        for line in _shell_lines(cell)
        if line.startswith("sleeptrain ")
    ]
    assert commands
    for words in commands:
        name, *rest = words
        assert name in cli.commands, f"{notebook.name}: no command 'sleeptrain {name}'"
        command = cli.commands[name]
        # Parsing checks the options and arguments without running anything.
        command.make_context(f"sleeptrain {name}", list(rest), resilient_parsing=False)
