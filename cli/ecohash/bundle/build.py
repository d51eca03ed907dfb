"""Write a bundle: the collectors' Items into the blob store, then the manifest, then its signature.

Building over the same directory again finishes what an interrupted build (or an interrupted
copy onto a disk) left: a blob already there with the right bytes is kept, anything else is
written again. The manifest and its signature come last, so a directory holds either the
previous signed bundle (plus new blobs) or the new one, never a signed half.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from pathlib import Path

from ecohash.atomic import sync_directory, write_atomic
from ecohash.bundle import blobs, keys
from ecohash.bundle import manifest as manifests
from ecohash.bundle.items import Item
from ecohash.bundle.keys import SecretKey
from ecohash.bundle.manifest import (
    MANIFEST_FILE_NAME,
    SIGNATURE_FILE_NAME,
    Entry,
    Manifest,
    check_destination,
    is_sha256,
)
from ecohash.errors import InvalidInputError
from ecohash.standard import load_standard
from ecohash.timestamps import utc_time

_BUNDLE_NAMES = {MANIFEST_FILE_NAME, SIGNATURE_FILE_NAME, "blobs"}


class PinMismatchError(InvalidInputError):
    """An item's bytes do not hash to the sha256 its collector pinned."""


def build_bundle(items: list[Item], out: Path, *, standard_file: Path, site_name: str | None,
                 key: SecretKey, base: Path | None = None) -> Manifest:
    """Write `items` as a signed bundle in `out`; with `base`, only the blobs that base lacks.

    Every pinned sha256 is checked as its bytes are copied; a mismatch stops the build
    naming the item, and its blob is never stored.
    """
    standard = load_standard(standard_file)
    standard_sha256 = hashlib.sha256(standard_file.read_bytes()).hexdigest()
    base_blobs: dict[str, int] = {}
    base_sha256 = None
    if base is not None:
        # The site holds every blob the base lists (a loaded delta's base was loaded first).
        base_manifest, base_sha256 = manifests.read(base)
        base_blobs = base_manifest.blobs()
    for item in items:
        check_destination(item.kind, item.destination)
    _prepare(out)
    stored: dict[str, int] = {}  # sha256 -> size, for blobs this bundle holds
    entries = []
    for item in items:
        sha256, size = _store(item, out, base_blobs, stored)
        entries.append(Entry(kind=item.kind, destination=item.destination, sha256=sha256, size=size,
                             media_type=item.media_type))
    sync_directory(blobs.blob_directory(out))
    manifest = Manifest(
        created=utc_time(),
        standard_name=standard.metadata.name,
        standard_sha256=standard_sha256,
        site=site_name,
        base_manifest_sha256=base_sha256,
        entries=manifests.sort_entries(entries),
    )
    manifest = _sign_unless_unchanged(manifest, out, key)
    blobs.remove_unwanted(out, keep=set(stored))
    return manifest


def _prepare(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"{out}: not a directory; a bundle is a directory")
    if out.is_dir():
        foreign = sorted(path.name for path in out.iterdir() if path.name not in _BUNDLE_NAMES)
        if foreign:
            raise InvalidInputError(f"{out}: not empty and not a bundle (it holds {', '.join(foreign[:3])}); "
                                    "choose an empty or new directory")
    blobs.blob_directory(out).mkdir(parents=True, exist_ok=True)
    blobs.remove_unfinished(out)


def _store(item: Item, out: Path, base_blobs: dict[str, int], stored: dict[str, int]) -> tuple[str, int]:
    """Put one item's blob in the store (or find it there, or in the base); its sha256 and size."""
    if item.sha256 is not None and not is_sha256(item.sha256):
        raise InvalidInputError(f"{item.destination}: pinned sha256 {item.sha256!r} is not 64 lower-case "
                                "hex digits")
    sha256 = item.sha256
    if sha256 is None:
        sha256, _size = _hash_source(item)
    if sha256 in stored:
        return sha256, stored[sha256]
    if sha256 in base_blobs:
        # The site has it already; a pin was checked when the base was built.
        return sha256, base_blobs[sha256]
    existing = blobs.blob_path(out, sha256)
    if existing.is_file() and blobs.hash_file(existing)[0] == sha256:
        stored[sha256] = existing.stat().st_size
        return sha256, stored[sha256]
    try:
        actual, size = blobs.copy_in(item.path, out, sha256)
    except OSError as error:
        raise _unreadable(item, error) from None
    if actual != sha256:
        raise PinMismatchError(f"{item.path}: {item.destination}: sha256 is {actual}, not the pinned "
                               f"{sha256}; refused (the file changed since it was pinned, or the pin is "
                               "wrong)")
    stored[sha256] = size
    return sha256, size


def _hash_source(item: Item) -> tuple[str, int]:
    try:
        return blobs.hash_file(item.path)
    except OSError as error:
        raise _unreadable(item, error) from None


def _unreadable(item: Item, error: OSError) -> InvalidInputError:
    return InvalidInputError(f"{item.path}: cannot read {item.destination}: {error.strerror or error}")


def _sign_unless_unchanged(manifest: Manifest, out: Path, key: SecretKey) -> Manifest:
    """Write and sign the manifest, unless the signed one there already says the same (but its date)."""
    manifest_file, signature_file = out / MANIFEST_FILE_NAME, out / SIGNATURE_FILE_NAME
    try:
        previous_text = manifest_file.read_text(encoding="utf-8")
        previous = manifests.parse(previous_text, str(manifest_file))
        keys.verify(previous_text.encode(), signature_file.read_text(encoding="utf-8"), key.public,
                    str(signature_file))
    except (OSError, UnicodeDecodeError, InvalidInputError):
        previous = None
    if previous is not None and dataclasses.replace(previous, created=manifest.created) == manifest:
        return previous
    text = manifest.text()
    write_atomic(manifest_file, text, mode=0o644)
    write_atomic(signature_file, keys.sign(text.encode(), key, _trusted_comment(manifest)), mode=0o644)
    return manifest


def _trusted_comment(manifest: Manifest) -> str:
    # minisign's own fields first (its default comment), then what a person checking by
    # hand wants to see; the name is the standard's own, so anything unprintable goes.
    standard = "".join(c if c.isprintable() and c != "\t" else "?" for c in manifest.standard_name)
    return (f"timestamp:{int(time.time())}\tfile:{MANIFEST_FILE_NAME}\thashed"
            f"\tsite:{manifest.site or '-'}\tstandard:{standard}\tcreated:{manifest.created}")

