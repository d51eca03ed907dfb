"""The site's blob store, MIRROR_ROOT/blobs/sha256/<hex>: only bytes that hash to their name get in.

Verify hashed the bundle's blobs once, but the disk or share they come from may serve other
bytes when they are read again (a swapped file, a share that answers differently). So a blob
is hashed again while it is copied in, from the one read whose bytes are written, to a
temporary name that is renamed into place only when they hash to the blob's name and have
its size. A link, a FIFO or a device is refused before it is opened (ecohash.untrusted_files).

A blob the store already holds is hashed again too before a release links it, not trusted by
its name: the store is written through hard links nobody should write to, but a person or a
program on this machine may have, and what a release links the site mirror signs with its
own key. Re-reading the store costs a read of local disk per load, less than the bundle's
own verify from a USB disk; a record of what the store wrote would be no stronger than the
store itself, which whoever could alter a blob could alter too.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Sequence
from io import BufferedWriter
from pathlib import Path
from typing import Protocol

from ecohash.atomic import sync_directory
from ecohash.bundle.manifest import BundleInvalidError
from ecohash.errors import EcohashError, InvalidInputError
from ecohash.untrusted_files import NotRegularFileError, chunks, open_regular


class StoredEntry(Protocol):
    """What the store needs of a verified manifest's entry."""

    @property
    def sha256(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def destination(self) -> str: ...


def fill_store(bundle: Path, entries: Sequence[StoredEntry], store: Path) -> int:
    """Put every blob the entries name into `store`, checked; return how many were copied in.

    Refused before anything is copied: a blob in neither the bundle nor the store (a delta
    whose base was never loaded here). Refused as they are met: a bundle blob whose bytes are
    not those verified, and a stored blob whose bytes are not its name.
    """
    wanted = {entry.sha256: entry for entry in entries}
    bundle_blobs = bundle / "blobs" / "sha256"
    missing = [entry for digest, entry in sorted(wanted.items())
               if not os.path.lexists(store / digest) and not os.path.lexists(bundle_blobs / digest)]
    if missing:
        names = ", ".join(f"{e.sha256} ({e.destination})" for e in missing)
        raise InvalidInputError(
            f"{bundle}: blobs in neither the bundle nor the site's store {store}: {names};"
            " load the bundle this delta was built from first"
        )
    store.mkdir(parents=True, exist_ok=True)
    # The store first: a refusal there leaves the store as it was, not half filled.
    to_copy = []
    for digest, entry in sorted(wanted.items()):
        if os.path.lexists(store / digest):
            _check_stored(store / digest, entry, carried=os.path.lexists(bundle_blobs / digest))
        else:
            to_copy.append(entry)
    for entry in to_copy:
        _copy_in(bundle_blobs / entry.sha256, store, entry)
    if to_copy:
        sync_directory(store)
    return len(to_copy)


def _copy_in(source: Path, store: Path, entry: StoredEntry) -> None:
    try:
        reader = open_regular(source)
    except NotRegularFileError as error:
        raise BundleInvalidError(f"{source}: {error.strerror} ({entry.destination}); the bundle is refused, "
                                 "nothing was switched") from None
    except OSError as error:
        raise BundleInvalidError(f"{source}: unreadable since it was verified: {error.strerror or error} "
                                 f"({entry.destination}); the bundle is refused, nothing was switched"
                                 ) from None
    partial = store / f".{entry.sha256}.partial"  # one per blob: the load holds the mirror's lock
    try:
        with reader, _create(partial) as writer:
            digest, size = hashlib.sha256(), 0
            for chunk in chunks(reader, entry.size):
                digest.update(chunk)
                writer.write(chunk)
                size += len(chunk)
            writer.flush()
            os.fsync(writer.fileno())
        problem = _mismatch(digest.hexdigest(), size, entry)
        if problem:
            raise BundleInvalidError(f"{source}: changed since it was verified: {problem} "
                                     f"({entry.destination}); the bundle is refused, nothing was switched")
        # Hard links of store blobs are what the mirror serves: nobody writes through them.
        os.chmod(partial, 0o444)
        os.replace(partial, store / entry.sha256)
    except OSError as error:
        raise EcohashError(f"{source}: cannot copy it into the site's blob store ({partial}): "
                           f"{error.strerror or error}; nothing was switched") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)


def _check_stored(path: Path, entry: StoredEntry, *, carried: bool) -> None:
    try:
        with open_regular(path) as reader:
            digest, size = hashlib.sha256(), 0
            for chunk in chunks(reader, entry.size):
                digest.update(chunk)
                size += len(chunk)
        problem = _mismatch(digest.hexdigest(), size, entry)
    except OSError as error:
        problem = error.strerror or str(error)
    if problem:
        again = "load this bundle again" if carried else "load a bundle that carries it"
        raise BundleInvalidError(f"{path}: altered in the site's blob store: {problem} ({entry.destination});"
                                 f" refused, nothing was switched: remove it, then {again}")


def _create(path: Path) -> BufferedWriter:
    # O_NOFOLLOW: a link left at this name would write through to wherever it points.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    return os.fdopen(descriptor, "wb")


def _mismatch(sha256: str, size: int, entry: StoredEntry) -> str | None:
    if size > entry.size:  # read no further than one byte past the size: how far, unknown
        return f"longer than {entry.size} bytes"
    if size < entry.size:
        return f"{size} of {entry.size} bytes"
    if sha256 != entry.sha256:
        return f"its sha256 is {sha256}"
    return None
