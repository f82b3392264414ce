"""Adapter versions on disk: commit protocol, the latest pointer, and recovery of what a killed sleep left."""

from __future__ import annotations

import os

import pytest

from sleeptrain.errors import SleeptrainError
from sleeptrain.sleep.versions import (
    adapters_dir,
    commit_version,
    latest_dir,
    latest_version,
    recover,
    temporary_dir,
    versions,
)


def staged(out, version: int, text: str = "weights"):
    folder = temporary_dir(out, version)
    (folder / "adapter_model.safetensors").write_text(text)
    return folder


def test_no_versions_before_the_first_sleep(tmp_path):
    assert latest_version(tmp_path) is None and latest_dir(tmp_path) is None and versions(tmp_path) == []


def test_commit_renames_the_staging_folder_and_moves_latest(tmp_path):
    commit_version(tmp_path, staged(tmp_path, 1, "one"), 1)
    commit_version(tmp_path, staged(tmp_path, 2, "two"), 2)

    assert versions(tmp_path) == [1, 2] and latest_version(tmp_path) == 2
    assert os.readlink(adapters_dir(tmp_path) / "latest") == "v2"  # relative: the folder can move
    assert (adapters_dir(tmp_path) / "latest" / "adapter_model.safetensors").read_text() == "two"
    assert (adapters_dir(tmp_path) / "v1" / "adapter_model.safetensors").read_text() == "one"
    assert sorted(p.name for p in adapters_dir(tmp_path).iterdir()) == ["latest", "v1", "v2"]


def test_a_version_is_never_overwritten(tmp_path):
    commit_version(tmp_path, staged(tmp_path, 1), 1)
    with pytest.raises(SleeptrainError, match="already exists"):
        commit_version(tmp_path, staged(tmp_path, 1), 1)


def test_recover_removes_staging_folders_and_versions_latest_never_pointed_to(tmp_path):
    commit_version(tmp_path, staged(tmp_path, 1), 1)
    staged(tmp_path, 2)  # killed while writing
    (adapters_dir(tmp_path) / "v3").mkdir()  # killed between the rename and moving latest
    os.symlink("v1", adapters_dir(tmp_path) / ".tmp-latest")  # killed between symlink and replace

    removed = recover(tmp_path)

    assert sorted(removed) == [".tmp-latest", ".tmp-v2", "v3"]
    assert versions(tmp_path) == [1] and latest_version(tmp_path) == 1
    assert recover(tmp_path) == []


def test_a_broken_latest_pointer_is_an_error_naming_it(tmp_path):
    adapters_dir(tmp_path).mkdir()
    os.symlink("v7", adapters_dir(tmp_path) / "latest")
    with pytest.raises(SleeptrainError, match="latest: points to 'v7'"):
        latest_version(tmp_path)
