"""A bundle's manifest: every blob's sha256, size, kind and destination, in canonical JSON.

The manifest is the one thing signed; each blob is then trusted by its sha256 alone. So its
text must be the same for the same content wherever it is written (sorted keys, one-space
indent, a trailing line break, entries in one order), and everything a loader later acts on
(a kind, a destination) is checked here, when it is read, before anyone uses it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, TypeGuard

from ecohash.bundle.items import DESTINATION_ROOTS
from ecohash.errors import InvalidInputError
from ecohash.untrusted_files import NotRegularFileError, open_regular

SCHEMA = "ecohash.io/bundle/v1"
MANIFEST_FILE_NAME = "manifest.json"
SIGNATURE_FILE_NAME = "manifest.json.minisig"
BLOBS_DIRECTORY = PurePosixPath("blobs/sha256")
# An image's configs and layers all go to its repository's blob store; every other
# destination names one thing, so two different blobs for it are a mistake.
SHARED_DESTINATION_KINDS = frozenset({"image-config", "image-layer"})
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CREATED = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


class BundleInvalidError(InvalidInputError):
    """A bundle cannot be trusted: its signature, its manifest, or a blob is wrong or missing."""


@dataclass(frozen=True)
class Entry:
    """One blob in a bundle and where it goes at the site."""

    kind: str
    destination: str
    sha256: str
    size: int
    media_type: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "size": self.size, "kind": self.kind,
                "destination": self.destination, "media_type": self.media_type}


@dataclass(frozen=True)
class Manifest:
    created: str
    standard_name: str
    standard_sha256: str
    site: str | None
    base_manifest_sha256: str | None
    entries: tuple[Entry, ...]

    def text(self) -> str:
        """The canonical JSON text: what is signed, byte for byte."""
        document = {
            "schema": SCHEMA,
            "created": self.created,
            "standard": {"name": self.standard_name, "sha256": self.standard_sha256},
            "site": self.site,
            "base": {"manifest_sha256": self.base_manifest_sha256} if self.base_manifest_sha256 else None,
            "entries": [entry.as_json() for entry in self.entries],
        }
        return json.dumps(document, sort_keys=True, indent=1) + "\n"

    def blobs(self) -> dict[str, int]:
        """Every distinct blob, sha256 to size, in the entries' order."""
        return {entry.sha256: entry.size for entry in self.entries}

    def destinations(self, sha256: str) -> list[str]:
        return [entry.destination for entry in self.entries if entry.sha256 == sha256]


def sort_entries(entries: list[Entry]) -> tuple[Entry, ...]:
    """Entries in the manifest's order, duplicates dropped; two blobs for one destination refused."""
    unique = sorted(set(entries), key=lambda e: (e.kind, e.destination, e.sha256, e.size, e.media_type or ""))
    by_destination: dict[str, Entry] = {}
    for entry in unique:
        check_entry(entry)
        if entry.kind in SHARED_DESTINATION_KINDS:
            continue
        other = by_destination.setdefault(entry.destination, entry)
        if other.sha256 != entry.sha256:
            raise InvalidInputError(f"{entry.destination}: two different blobs for one destination "
                                    f"(sha256 {other.sha256} and {entry.sha256})")
    return tuple(unique)


def check_entry(entry: Entry) -> None:
    """Refuse a kind, destination or digest that a loader must never act on."""
    check_destination(entry.kind, entry.destination)
    if not is_sha256(entry.sha256):
        raise InvalidInputError(f"{entry.destination}: sha256 {entry.sha256!r} is not 64 lower-case hex "
                                "digits")
    if entry.size < 0:
        raise InvalidInputError(f"{entry.destination}: negative size {entry.size}")


def check_destination(kind: str, destination: str) -> None:
    root = DESTINATION_ROOTS.get(kind)
    if root is None:
        raise InvalidInputError(f"{destination}: unknown kind {kind!r}; known: "
                                f"{', '.join(DESTINATION_ROOTS)}")
    # The destination becomes a path at the site: never absolute, never climbing out.
    parts = destination.split("/")
    if (not destination.startswith(root) or any(part in ("", ".", "..") for part in parts)
            or not destination.isprintable() or "\\" in destination):
        raise InvalidInputError(f"{destination!r}: a {kind} destination is a relative path under {root} "
                                "with no empty, '.' or '..' parts")


def is_sha256(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and _SHA256.match(value) is not None


def is_created(value: object) -> TypeGuard[str]:
    """A manifest's `created`: YYYY-MM-DDTHH:MM:SSZ, so that its text sorts as time does."""
    return isinstance(value, str) and _CREATED.match(value) is not None


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def parse(text: str, source: str) -> Manifest:
    """Read a manifest; anything unexpected is a BundleInvalidError naming `source`.

    Called only on a manifest whose signature verified (or on a base the builder trusts),
    so a problem here is a bug or a foreign file, and is reported, never repaired.
    """
    try:
        document = json.loads(text)
        if document.get("schema") != SCHEMA:
            raise ValueError(f"schema is {document.get('schema')!r}, not {SCHEMA!r}")
        if not is_created(document["created"]):
            raise ValueError(f"created {document['created']!r} is not YYYY-MM-DDTHH:MM:SSZ")
        standard = document["standard"]
        base = document["base"]
        site = document["site"]
        if site is not None and not isinstance(site, str):
            raise ValueError("site is neither a name nor null")
        entries = [_entry(item) for item in document["entries"]]
        manifest = Manifest(
            created=document["created"],
            standard_name=_string(standard["name"]),
            standard_sha256=_digest(standard["sha256"]),
            site=site,
            base_manifest_sha256=_digest(base["manifest_sha256"]) if base is not None else None,
            entries=sort_entries(entries),
        )
    except (ValueError, KeyError, TypeError, AttributeError, InvalidInputError) as error:
        raise BundleInvalidError(f"{source}: not an ecohash bundle manifest: {error}") from None
    if manifest.text() != text:
        # Only ecohash writes manifests; a differently written one was edited or is foreign.
        raise BundleInvalidError(f"{source}: not in canonical form (sorted keys, one-space indent, "
                                 "entries sorted): not written by ecohash")
    return manifest


def read(directory: Path) -> tuple[Manifest, str]:
    """A bundle directory's manifest and the sha256 of its text; unverified (a base)."""
    path = directory / MANIFEST_FILE_NAME
    try:
        with open_regular(path) as file:
            text = file.read().decode("utf-8")
    except FileNotFoundError:
        raise BundleInvalidError(f"{path}: missing: {directory} is not a bundle (or its build did not "
                                 "finish)") from None
    except NotRegularFileError as error:
        raise BundleInvalidError(f"{path}: {error.strerror}; refused") from None
    except (OSError, UnicodeDecodeError) as error:
        raise BundleInvalidError(f"{path}: cannot read: "
                                 f"{getattr(error, 'strerror', None) or error}") from None
    return parse(text, str(path)), sha256_text(text)


def _entry(item: Any) -> Entry:
    media_type = item["media_type"]
    if media_type is not None and not isinstance(media_type, str):
        raise ValueError(f"media_type {media_type!r} is not a string")
    size = item["size"]
    if not isinstance(size, int) or isinstance(size, bool):
        raise ValueError(f"size {size!r} is not a whole number")
    return Entry(kind=_string(item["kind"]), destination=_string(item["destination"]),
                 sha256=_string(item["sha256"]), size=size, media_type=media_type)


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a string")
    return value


def _digest(value: Any) -> str:
    if not is_sha256(value):
        raise ValueError(f"{value!r} is not a sha256")
    return value
