"""One process changing a site at a time: a lock file in the state directory, held with flock.

Rollouts, bootstrap, apply and curtailments all take it, which is why it sits below them.

flock is released by the kernel when the holder exits however it exits (Ctrl-C, kill -9,
a crash), so a lock can never be left stale; the file only says who holds it and since
when, for the message the next caller sees.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ecohash.errors import EcohashError
from ecohash.paths import state_dir
from ecohash.timestamps import utc_time


class SiteLockedError(EcohashError):
    """Another ecohash process is changing the same site."""


def lock_file(site_name: str) -> Path:
    return state_dir() / "locks" / f"{site_name}.lock"


@contextmanager
def site_lock(site_name: str, command: str) -> Iterator[None]:
    """Hold the site's lock for the block, or refuse at once naming the holder."""
    with file_lock(lock_file(site_name), f"site {site_name}", command):
        yield


@contextmanager
def file_lock(path: Path, subject: str, command: str) -> Iterator[None]:
    """Hold the lock at `path` for the block, or refuse at once naming the holder of `subject`."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Not truncated on open: the holder's note must survive a refused caller's open.
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SiteLockedError(_refusal(subject, _read_holder(descriptor))) from None
        holder = {
            "command": command,
            "user": getpass.getuser(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "since": utc_time(),
        }
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, (json.dumps(holder) + "\n").encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(descriptor, 0)
    finally:
        os.close(descriptor)  # closing releases the flock


def _read_holder(descriptor: int) -> dict[str, Any]:
    try:
        holder: dict[str, Any] = json.loads(os.pread(descriptor, 4096, 0).decode() or "{}")
        return holder
    except ValueError:
        return {}


def _refusal(subject: str, holder: dict[str, Any]) -> str:
    if not holder:
        return f"{subject} is locked by another ecohash process; try again when it ends"
    return (
        f"{subject} is busy: `ecohash {holder.get('command', '?')}` by "
        f"{holder.get('user', '?')}@{holder.get('host', '?')} (pid {holder.get('pid', '?')}) "
        f"since {holder.get('since', '?')}; try again when it ends"
    )
