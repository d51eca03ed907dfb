"""A bundle's blob store: blobs/sha256/<hex>, each written whole or not at all, hashed as it streams.

Bundles carry tens of gigabytes (a vLLM image, model weights) on USB disks, so a blob is read
once per job: hashed while it is copied, in 1 MiB chunks (large enough that hashlib runs at
OpenSSL's speed outside the GIL, small enough to keep memory flat).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

from ecohash.bundle.manifest import BLOBS_DIRECTORY, is_sha256

CHUNK_BYTES = 1 << 20
_TEMPORARY_SUFFIX = ".tmp"


def blob_directory(bundle: Path) -> Path:
    return bundle / BLOBS_DIRECTORY


def blob_path(bundle: Path, sha256: str) -> Path:
    return blob_directory(bundle) / sha256


def hash_file(path: Path) -> tuple[str, int]:
    """A file's sha256 and size, streamed."""
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK_BYTES)
    view = memoryview(buffer)
    size = 0
    with open(path, "rb", buffering=0) as file:
        while count := file.readinto(buffer):
            digest.update(view[:count])
            size += count
    return digest.hexdigest(), size


def copy_in(source: Path, bundle: Path, expected_sha256: str) -> tuple[str, int]:
    """Copy `source` into the store under `expected_sha256`, hashing as it goes; return what it hashed.

    The blob appears under its name only when its bytes hashed to that name: otherwise the
    copy is removed and the store is unchanged (the caller reports the mismatch).
    """
    directory = blob_directory(bundle)
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK_BYTES)
    view = memoryview(buffer)
    size = 0
    descriptor, temporary = tempfile.mkstemp(prefix=f".{expected_sha256}.", suffix=_TEMPORARY_SUFFIX,
                                             dir=directory)
    try:
        with open(source, "rb", buffering=0) as reader, os.fdopen(descriptor, "wb") as writer:
            while count := reader.readinto(buffer):
                chunk = view[:count]
                digest.update(chunk)
                writer.write(chunk)
                size += count
            writer.flush()
            # The disk may be unplugged and carried away right after the build.
            os.fsync(writer.fileno())
        actual = digest.hexdigest()
        if actual == expected_sha256:
            os.chmod(temporary, 0o644)
            os.replace(temporary, blob_path(bundle, actual))
        return actual, size
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def remove_unfinished(bundle: Path) -> None:
    """Remove what interrupted copies left behind."""
    for path in blob_directory(bundle).glob(f".*{_TEMPORARY_SUFFIX}"):
        path.unlink()


def remove_unwanted(bundle: Path, keep: set[str]) -> None:
    """Remove blobs no entry needs any more (a rebuild of other content, or now in the base).

    Only names this store writes are ever removed; anything else is left alone.
    """
    for path in blob_directory(bundle).iterdir():
        if is_sha256(path.name) and path.name not in keep:
            path.unlink()
