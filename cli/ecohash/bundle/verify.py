"""Check a bundle before a byte of it is trusted: the manifest's signature first, then every blob.

Nothing in the manifest is read until its signature verifies with the site's public key; each
blob is then trusted by its sha256 alone. Every bad blob is named at once (a disk copied
badly usually has several), with where it was meant to go. Every file is read as
ecohash.untrusted_files reads it: a link, a FIFO or a device is refused, never opened.
A verified bundle is still read again by whoever copies from it (the disk may serve other
bytes the second time): `bundle load` hashes each blob again as it copies it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from ecohash.bundle import blobs, keys
from ecohash.bundle import manifest as manifests
from ecohash.bundle.keys import PublicKey
from ecohash.bundle.manifest import MANIFEST_FILE_NAME, SIGNATURE_FILE_NAME, BundleInvalidError, Manifest
from ecohash.errors import InvalidInputError
from ecohash.untrusted_files import NotRegularFileError, chunks, open_regular

__all__ = ["BundleInvalidError", "Verification", "check_bundle", "verify_bundle"]


@dataclass(frozen=True)
class Verification:
    manifest: Manifest
    checked_bytes: int  # the bytes hashed here (or in the base)
    from_base: tuple[str, ...]  # blobs a delta leaves to its base, not checked here (no --base)


def verify_bundle(directory: Path, public_key: PublicKey, base: Path | None = None) -> Manifest:
    """The bundle's manifest, once its signature and every blob check out; else BundleInvalidError."""
    return check_bundle(directory, public_key, base).manifest


def check_bundle(directory: Path, public_key: PublicKey, base: Path | None = None) -> Verification:
    """verify_bundle, also saying how much was hashed and which blobs a delta leaves to its base."""
    manifest = _verified_manifest(directory, public_key)
    base_directory = _base_directory(manifest, base)
    problems = []
    checked_bytes = 0
    from_base = []
    for sha256, size in manifest.blobs().items():
        path = blobs.blob_path(directory, sha256)
        # lexists: a link in the bundle is the bundle's, and refused, not a blob left to the base.
        if not os.path.lexists(path) and manifest.base_manifest_sha256 is not None:
            if base_directory is None:
                from_base.append(sha256)
                continue
            path = blobs.blob_path(base_directory, sha256)
        problem = _blob_problem(path, sha256, size)
        if problem:
            where = manifest.destinations(sha256)
            also = f" and {len(where) - 1} more" if len(where) > 1 else ""
            problems.append(f"{path}: {problem} ({where[0]}{also})")
        else:
            checked_bytes += size
    if problems:
        summary = (f"{directory}: {len(problems)} of {len(manifest.blobs())} blobs missing, truncated or "
                   "altered; the bundle is refused")
        raise BundleInvalidError("\n".join([summary, *problems]))
    return Verification(manifest, checked_bytes, tuple(from_base))


def _verified_manifest(directory: Path, public_key: PublicKey) -> Manifest:
    manifest_file, signature_file = directory / MANIFEST_FILE_NAME, directory / SIGNATURE_FILE_NAME
    if not directory.is_dir():
        raise BundleInvalidError(f"{directory}: no such bundle directory")
    texts = []
    for path, missing in ((manifest_file, "not a bundle, or its build did not finish"),
                          (signature_file, "the bundle is unsigned, or its build did not finish")):
        try:
            with open_regular(path) as file:
                texts.append(file.read())
        except FileNotFoundError:
            raise BundleInvalidError(f"{path}: missing: {missing}; refused") from None
        except NotRegularFileError as error:
            raise BundleInvalidError(f"{path}: {error.strerror}; refused") from None
        except OSError as error:
            raise BundleInvalidError(f"{path}: cannot read: {error.strerror or error}") from None
    message, signature = texts
    try:
        keys.verify(message, signature.decode("utf-8", "replace"), public_key, str(signature_file))
    except keys.SignatureError as error:
        raise BundleInvalidError(f"{error}; the bundle is refused") from None
    try:
        text = message.decode("utf-8")
    except UnicodeDecodeError:
        raise BundleInvalidError(f"{manifest_file}: not UTF-8 text") from None
    return manifests.parse(text, str(manifest_file))


def _base_directory(manifest: Manifest, base: Path | None) -> Path | None:
    if base is None:
        return None
    if manifest.base_manifest_sha256 is None:
        raise InvalidInputError(f"--base {base}: this bundle is complete (not built --from another); it "
                                "needs no base")
    _base_manifest, base_sha256 = manifests.read(base)
    if base_sha256 != manifest.base_manifest_sha256:
        raise BundleInvalidError(f"{base}: not this delta's base: its manifest's sha256 is {base_sha256}, "
                                 f"the delta was built from {manifest.base_manifest_sha256}")
    return base


def _blob_problem(path: Path, sha256: str, size: int) -> str | None:
    """What is wrong with one blob, or None; the size is compared before anything is hashed."""
    try:
        with open_regular(path) as file:
            actual_size = os.fstat(file.fileno()).st_size
            if actual_size < size:
                return f"truncated: {actual_size} of {size} bytes"
            if actual_size > size:
                return f"altered: {actual_size} bytes, expected {size}"
            digest = hashlib.sha256()
            for chunk in chunks(file, size):
                digest.update(chunk)
    except FileNotFoundError:
        return "missing"
    except NotRegularFileError as error:
        return f"{error.strerror}; refused"
    except OSError as error:
        return f"unreadable: {error.strerror or error}"
    if digest.hexdigest() != sha256:
        return f"altered: its sha256 is {digest.hexdigest()}"
    return None
