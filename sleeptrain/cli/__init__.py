"""The command line: one module per verb group, each thin (parse, call a workflow, print).

`main()` turns every SleeptrainError into one line on stderr and a non-zero exit; `--debug` shows the
traceback instead. May import: sleeptrain.workflows, sleeptrain.config, sleeptrain.backends, typer, rich.
"""

from __future__ import annotations

from sleeptrain.cli.app import app, main

__all__ = ["app", "main"]
