"""Writing a file or a directory so that readers see the old content or the new, never half of either.

Rollout state and reports are written while a run can be interrupted (Ctrl-C, a lost
laptop session, a power cut on site); a torn file would lose what was already recorded.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path

from ecohash.errors import EcohashError, InvalidInputError


def write_atomic(path: Path, text: str, mode: int = 0o600) -> None:
    """Replace `path` with `text`: a temporary file beside it, synced, then renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    sync_directory(path.parent)


def sync_directory(directory: Path) -> None:
    # The rename itself is durable only once the directory entry is on disk.
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def replace_directory(path: Path, files: Mapping[str, str], marker: str, marker_text: str) -> None:
    """Replace the directory `path` with `files` (relative name -> text), whole.

    The directory is replaced only when it is absent, empty, or holds the file `marker`,
    which every directory written here holds: so only what this writer wrote is ever
    deleted. Anything else, a symbolic link included (never followed), is refused
    untouched. The new content is written beside `path` and renamed into place; what an
    interrupted replacement leaves beside it is removed by the next one.
    """
    path = Path(os.path.abspath(path))  # not resolve(): a link at `path` must not be followed
    moved_aside = False
    staging: Path | None = None
    try:
        _check_replaceable(path, marker)
        previous = path.with_name(f".{path.name}.previous")
        staging_prefix = f".{path.name}.writing-"
        path.parent.mkdir(parents=True, exist_ok=True)
        # Only replacements of `path` name their folders so; one killed midway left these.
        for leftover in [previous, *path.parent.glob(f"{staging_prefix}*")]:
            _remove(leftover)
        staging = Path(tempfile.mkdtemp(prefix=staging_prefix, dir=path.parent))
        (staging / marker).write_text(marker_text)
        for name, text in files.items():
            target = staging / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        staging.chmod(0o755)
        # rename() replaces an empty directory but no other: a full one is moved aside first.
        if path.is_dir() and any(path.iterdir()):
            os.replace(path, previous)
            moved_aside = True
        os.replace(staging, path)
        staging = None
        shutil.rmtree(previous, ignore_errors=True)
    except BaseException as error:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        if moved_aside and not path.exists():
            os.replace(previous, path)
        if isinstance(error, OSError):
            raise EcohashError(f"{path}: cannot write: {error.strerror or error}") from None
        raise


def _check_replaceable(path: Path, marker: str) -> None:
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if stat.S_ISLNK(mode):
        raise InvalidInputError(f"{path}: a symbolic link; ecohash writes into a real directory, never "
                                "through a link")
    if not stat.S_ISDIR(mode):
        raise InvalidInputError(f"{path}: not a directory; refusing to replace it")
    if not any(path.iterdir()):
        return
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISREG((path / marker).lstat().st_mode):
            return
    raise InvalidInputError(
        f"{path}: not empty and not written by ecohash (no {marker} in it); refusing to replace "
        "it: remove it or choose another directory")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.is_symlink() or path.exists():
        path.unlink()
