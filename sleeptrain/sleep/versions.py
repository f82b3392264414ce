"""Adapter versions on disk: `output_dir/adapters/v1`, `v2`, ... and `latest`, a symlink to the newest.

A version appears whole or not at all: a sleep writes into `adapters/.tmp-vN`, fsyncs every file and the
folder, renames it to `vN` (atomic within one file system), fsyncs the parent, and only then points
`latest` at it (a new symlink renamed over the old one, also atomic). The memory store is told last. A
process killed at any point leaves either the previous version as `latest` or the new one; `recover`
removes the leftovers (a half-written temporary folder, a renamed version that `latest` never pointed to).
PEFT writes the adapter files; what none of the libraries does is this commit protocol, hence this module.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from sleeptrain.errors import SleeptrainError

LATEST = "latest"
_VERSION = re.compile(r"^v(\d+)$")
_TMP_PREFIX = ".tmp-"


def adapters_dir(output_dir: str | Path) -> Path:
    return Path(output_dir) / "adapters"


def version_dir(output_dir: str | Path, version: int) -> Path:
    return adapters_dir(output_dir) / f"v{version}"


def latest_version(output_dir: str | Path) -> int | None:
    """The version `latest` points to, or None before the first sleep."""
    link = adapters_dir(output_dir) / LATEST
    if not link.is_symlink():
        if link.exists():
            raise SleeptrainError(f"{link}: expected a symlink to an adapter version (v1, v2, ...)")
        return None
    match = _VERSION.match(os.readlink(link))
    if match is None or not (link.parent / os.readlink(link)).is_dir():
        raise SleeptrainError(f"{link}: points to {os.readlink(link)!r}, not an adapter version folder")
    return int(match.group(1))


def latest_dir(output_dir: str | Path) -> Path | None:
    version = latest_version(output_dir)
    return None if version is None else version_dir(output_dir, version)


def versions(output_dir: str | Path) -> list[int]:
    """Every version folder present, in order (including one `latest` does not point to yet)."""
    folder = adapters_dir(output_dir)
    if not folder.is_dir():
        return []
    found = (_VERSION.match(p.name) for p in folder.iterdir() if p.is_dir() and not p.is_symlink())
    return sorted(int(m.group(1)) for m in found if m)


def temporary_dir(output_dir: str | Path, version: int) -> Path:
    """A fresh folder to write version `version` into before it is committed."""
    folder = adapters_dir(output_dir) / f"{_TMP_PREFIX}v{version}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit_version(output_dir: str | Path, temporary: Path, version: int) -> Path:
    """Make a fully written temporary folder version `version` and point `latest` at it."""
    folder = adapters_dir(output_dir)
    target = version_dir(output_dir, version)
    if target.exists():
        raise SleeptrainError(f"{target}: adapter version {version} already exists")
    for path in temporary.rglob("*"):
        if path.is_file():
            _fsync_path(path)
    _fsync_path(temporary)
    os.rename(temporary, target)
    _fsync_path(folder)
    pointer = folder / f"{_TMP_PREFIX}{LATEST}"
    if pointer.is_symlink() or pointer.exists():
        pointer.unlink()
    os.symlink(target.name, pointer)  # relative, so the whole output_dir can be moved
    os.replace(pointer, folder / LATEST)
    _fsync_path(folder)
    return target


def recover(output_dir: str | Path) -> list[str]:
    """Remove what a killed sleep left behind; returns what was removed, for the log. Versions newer than
    `latest` were never committed (the store was not told), so their memories are still pending and the next
    sleep trains them again."""
    folder = adapters_dir(output_dir)
    if not folder.is_dir():
        return []
    removed = []
    for path in folder.iterdir():
        if path.name.startswith(_TMP_PREFIX):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path.name)
    current = latest_version(output_dir) or 0
    for version in versions(output_dir):
        if version > current:
            shutil.rmtree(version_dir(output_dir, version))
            removed.append(f"v{version}")
    return removed
