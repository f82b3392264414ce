"""`sleeptrain.workflows` loads each workflow on first use; what it hands out is the workflow, whichever name
of a module is asked for first."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "names",
    ["TrainResult, train", "train, TrainResult", "QuickstartResult, quickstart", "quickstart, QuickstartResult"],
)
def test_a_fresh_import_hands_out_the_functions_not_their_modules(names):
    # A fresh interpreter: in this one another test may have imported the workflows already.
    workflow = "train" if "train" in names else "quickstart"
    code = f"import inspect; from sleeptrain.workflows import {names}; print(inspect.isfunction({workflow}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
