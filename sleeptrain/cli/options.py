"""The command-line options every command shares, declared once."""

from __future__ import annotations

from typing import Annotated

import typer

QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or info logs.")]
DebugOption = Annotated[bool, typer.Option("--debug", help="Show tracebacks and library logs.")]
