"""`backend: unsloth` runs Unsloth on a CUDA GPU; anywhere else it is a one-line error before any model or
data is touched, and QLoRA stays available through the default backend."""

from __future__ import annotations

import pytest
import torch

from sleeptrain.config import load_recipe
from sleeptrain.errors import SleeptrainError
from sleeptrain.workflows import train


def test_unsloth_without_cuda_is_a_clear_error_before_loading(write_recipe, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the backend would run")
    # The data file does not even exist: the backend is checked first, so the user learns the real problem.
    path = write_recipe(f"datasets:\n  - path: missing.jsonl\noutput_dir: {tmp_path / 'out'}\nbackend: unsloth\n")
    with pytest.raises(SleeptrainError, match="backend: unsloth needs a CUDA GPU") as caught:
        train(load_recipe(path))
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_unsloth_does_not_fine_tune_the_whole_model(write_recipe):
    path = write_recipe("datasets:\n  - path: a.jsonl\noutput_dir: out\nbackend: unsloth\nadapter: full\n")
    with pytest.raises(SleeptrainError, match="backend: unsloth trains adapters"):
        load_recipe(path)


def test_an_unknown_backend_names_the_choices(write_recipe):
    path = write_recipe("datasets:\n  - path: a.jsonl\noutput_dir: out\nbackend: vllm\n")
    with pytest.raises(SleeptrainError, match=r"recipe.yaml:4: 'backend': .*'transformers' or 'unsloth'"):
        load_recipe(path)
