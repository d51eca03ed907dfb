"""Reading a file that someone else controls (a bundle's disk or share, what an executor sent
back): a regular file, or nothing.

A name under a bundle's blobs/ (or an executor's artifacts/) may be a symbolic link to a
file of this machine, a FIFO that blocks whoever opens it, or a device. So a file is looked
at with lstat before it is opened, opened without following a link and without waiting on a
FIFO, and what was opened must be the very regular file that was looked at. Its bytes are
read once, in 1 MiB chunks, and no further than its expected size allows: a file that grows
while it is read is found too long without being read to its end.
"""

from __future__ import annotations

import errno
import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path

# As the bundle's writer copies (ecohash.bundle.blobs): hashlib at OpenSSL's speed, memory flat.
# Not imported from there: the manifest reads through this module, and blobs needs the manifest.
CHUNK_BYTES = 1 << 20

_KINDS = {
    stat.S_IFLNK: "a symbolic link",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFDIR: "a directory",
    stat.S_IFSOCK: "a socket",
}


class NotRegularFileError(OSError):
    """A file that must be a regular file is a link, a FIFO, a device, or was swapped while opened."""


def open_regular(path: Path) -> io.FileIO:
    """`path` opened for reading, unbuffered, once lstat and fstat agree it is one regular file.

    Raises NotRegularFileError, or the OSError of lstat or open (FileNotFoundError when absent).
    """
    seen = os.lstat(path)
    _require_regular(path, seen.st_mode)
    try:
        # O_NONBLOCK: a FIFO put there after the lstat opens at once, and fstat refuses it.
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        if error.errno == errno.ELOOP:  # a link put there after the lstat
            raise NotRegularFileError(errno.ELOOP, f"not a regular file but {_KINDS[stat.S_IFLNK]}",
                                      str(path)) from None
        raise
    try:
        opened = os.fstat(descriptor)
        _require_regular(path, opened.st_mode)
        if (opened.st_dev, opened.st_ino) != (seen.st_dev, seen.st_ino):
            raise NotRegularFileError(errno.ESTALE, "replaced by another file while it was opened", str(path))
        return os.fdopen(descriptor, "rb", buffering=0)
    except BaseException:
        os.close(descriptor)
        raise


def chunks(file: io.RawIOBase, expected_size: int) -> Iterator[memoryview]:
    """The file's bytes, in chunks of at most CHUNK_BYTES, up to `expected_size` + 1 bytes.

    Each chunk is a view of one reused buffer: use it before asking for the next.
    """
    buffer = bytearray(CHUNK_BYTES)
    view = memoryview(buffer)
    left = expected_size + 1  # one byte more than expected is enough to know it is too long
    while left > 0:
        count = file.readinto(view[: min(CHUNK_BYTES, left)])
        if not count:
            return
        left -= count
        yield view[:count]


def _require_regular(path: Path, mode: int) -> None:
    if not stat.S_ISREG(mode):
        kind = _KINDS.get(stat.S_IFMT(mode), "not a file")
        # ELOOP for a link, as O_NOFOLLOW says when one is put there after the lstat.
        code = errno.ELOOP if stat.S_ISLNK(mode) else errno.EINVAL
        raise NotRegularFileError(code, f"not a regular file but {kind}", str(path))
