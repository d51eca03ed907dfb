"""Publishing a verified bundle at the site: its blob store, a release of the mirror, the registry.

    mirror_root/blobs/sha256/<hex>           every blob once; grows, so a delta finds its base here
    mirror_root/releases/<manifest sha256>/  apt/ (signed flat repository), files/, wheels/,
                                             models/, keys/site-mirror.gpg, manifest.json
    mirror_root/current -> releases/<...>    what the mirror serves
    mirror_root/loads.log                    a line each time `current` switches, downgrades marked

Nodes see a release only when `current` is switched to it, last (a new symlink renamed over
the old), after every image is in the registry: a load that fails anywhere before leaves
`current` as it was. A release is built beside the others and renamed into place whole, so
one that exists is complete, and a second load of the same bundle rewrites nothing.
Blobs enter the store, and are re-checked there, as ecohash.bundle.store says; a bundle
older than the release `current` names is refused under the same lock (ecohash.bundle.binding).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol

from ecohash import aptrepo
from ecohash.atomic import sync_directory
from ecohash.bundle.binding import check_not_older
from ecohash.bundle.registrypush import ImageBlob, PushCount, RegistryClient, push_images
from ecohash.bundle.store import StoredEntry, fill_store
from ecohash.errors import EcohashError, InvalidInputError
from ecohash.timestamps import utc_time

KEYRING_PATH = "keys/site-mirror.gpg"
MIRROR_LABEL = "ecohash site mirror"
# Entries that become files of a release, under the first part of their destination.
RELEASE_KINDS = {"deb": "apt", "file": "files", "wheel": "wheels", "model-file": "models"}
IMAGE_KINDS = ("image-manifest", "image-index", "image-config", "image-layer", "image-tag")


class Entry(StoredEntry, Protocol):
    """One blob of a verified manifest (bundle-core's manifest entry)."""

    @property
    def kind(self) -> str: ...
    @property
    def media_type(self) -> str | None: ...


@dataclass(frozen=True)
class LoadResult:
    release: str  # the manifest's sha256: the release's name under mirror_root/releases
    release_dir: Path
    blobs_copied: int  # into the site's blob store; 0 when the store had them all
    release_built: bool  # False when the release was already there
    switched: bool  # False when `current` already named this release
    keyring_sha256: str  # of the mirror's keys/site-mirror.gpg, which the site file pins
    pushed: PushCount
    downgraded_from: str | None = None  # `created` of the newer release `current` named before


@dataclass(frozen=True)
class MirrorPaths:
    root: Path

    @property
    def store(self) -> Path:
        return self.root / "blobs" / "sha256"

    @property
    def releases(self) -> Path:
        return self.root / "releases"

    @property
    def current(self) -> Path:
        return self.root / "current"


def publish(
    bundle: Path,
    manifest_bytes: bytes,
    entries: Sequence[Entry],
    *,
    mirror_root: Path,
    registry_url: str | None,
    mirror_key: Path,
    expected_keyring: tuple[str, str] | None = None,
    created: str | None = None,
    allow_downgrade: bool = False,
) -> LoadResult:
    """Publish the entries of a bundle that verify has passed; see the module's docstring.
    `expected_keyring`: (sha256, where the site file pins it); the mirror must sign with it.
    `created`: the signed manifest's; one before the current release's is refused unless
    `allow_downgrade`."""
    mirror = MirrorPaths(mirror_root)
    release = hashlib.sha256(manifest_bytes).hexdigest()
    images = [_image_blob(entry) for entry in entries if entry.kind in IMAGE_KINDS]
    if images and not registry_url:
        raise InvalidInputError(
            f"{bundle}: the bundle carries images, and the site names no registry"
            " (spec.provisioning.registry)"
        )
    mirror_root.mkdir(parents=True, exist_ok=True)
    with _locked(mirror_root / ".lock"):
        downgraded_from = (
            check_not_older(created, mirror.current, allow_downgrade=allow_downgrade, bundle=bundle)
            if created is not None
            else None
        )
        copied = fill_store(bundle, entries, mirror.store)
        release_dir = mirror.releases / release
        built = not release_dir.is_dir()
        if built:
            _build_release(mirror, release, manifest_bytes, entries, mirror_key)
        keyring_sha256 = _sha256_of(release_dir / KEYRING_PATH)
        if expected_keyring is not None and expected_keyring[0] != keyring_sha256:
            pinned, where = expected_keyring
            raise InvalidInputError(
                f"{where}: the site pins mirror keyring {pinned}, but the mirror key {mirror_key}"
                f" exports {keyring_sha256}; nodes would refuse the mirror (nothing was switched)"
            )
        pushed = (
            push_images(RegistryClient(registry_url), images, mirror.store)
            if images and registry_url
            else PushCount()
        )
        previous = os.readlink(mirror.current) if mirror.current.is_symlink() else None
        switched = _switch(mirror.current, Path("releases") / release)
        if switched:
            _log_switch(mirror_root / "loads.log", bundle, release, created, previous, downgraded_from)
    return LoadResult(release, release_dir, copied, built, switched, keyring_sha256, pushed, downgraded_from)


@contextmanager
def _locked(lock_file: Path) -> Iterator[None]:
    with open(lock_file, "a") as lock:  # "a": a load that changes nothing touches nothing
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise EcohashError(f"another load holds {lock_file}") from None
        yield


def _build_release(
    mirror: MirrorPaths,
    release: str,
    manifest_bytes: bytes,
    entries: Sequence[Entry],
    mirror_key: Path,
) -> None:
    mirror.releases.mkdir(parents=True, exist_ok=True)
    building = mirror.releases / f".{release}.partial"
    shutil.rmtree(building, ignore_errors=True)  # a load that died half way
    building.mkdir()
    for entry in entries:
        top = RELEASE_KINDS.get(entry.kind)
        if top is not None:
            _link(mirror.store / entry.sha256, building / _relative(entry, top))
    repository = building / "apt"
    repository.mkdir(exist_ok=True)  # an empty repository still answers apt
    (building / "manifest.json").write_bytes(manifest_bytes)
    aptrepo.index_repository(repository, MIRROR_LABEL)
    aptrepo.ensure_key(mirror_key)
    try:
        aptrepo.sign_release(mirror_key, repository)
        aptrepo.export_keyring(mirror_key, building / KEYRING_PATH)
    finally:
        aptrepo.stop_agent(mirror_key)
    os.rename(building, mirror.releases / release)


def _relative(entry: Entry, top: str) -> Path:
    """The entry's place in a release; a destination that would leave its directory is refused
    (the manifest is signed, but a signature vouches for the signer, not the path)."""
    path = PurePosixPath(entry.destination)
    if path.is_absolute() or ".." in path.parts or path.parts[:1] != (top,) or len(path.parts) < 2:
        raise InvalidInputError(
            f"bundle entry {entry.sha256}: destination {entry.destination!r} is not under {top}/"
        )
    return Path(*path.parts)


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except FileExistsError:
        pass  # the same blob twice under one name: the first link is it
    except OSError:
        shutil.copyfile(source, target)  # the store and releases on different file systems


def _switch(current: Path, target: Path) -> bool:
    """Point `current` at `target` by renaming a new symlink over it: readers see the old
    release or the new, never none."""
    if current.is_symlink() and Path(os.readlink(current)) == target:
        return False
    fresh = current.with_name(f".{current.name}.new")
    fresh.unlink(missing_ok=True)
    fresh.symlink_to(target)
    os.replace(fresh, current)
    sync_directory(current.parent)
    return True


def _log_switch(log: Path, bundle: Path, release: str, created: str | None, previous: str | None,
                downgraded_from: str | None) -> None:
    """A line for whoever asks later which bundle the site ran when, and who rolled it back."""
    now = utc_time()
    line = (f"{now} current -> releases/{release} (created {created or '-'}) from {bundle}; "
            f"was {previous or 'none'}")
    if downgraded_from is not None:
        line += f" (created {downgraded_from}): a DOWNGRADE, loaded with --allow-downgrade"
    with open(log, "a", encoding="utf-8") as file:
        file.write(line + "\n")
        file.flush()
        os.fsync(file.fileno())


def _image_blob(entry: Entry) -> ImageBlob:
    """The repository (and digest or tag) an image entry names, from its destination."""
    prefix = "registry/"
    destination = entry.destination
    if not destination.startswith(prefix):
        raise InvalidInputError(f"bundle entry {entry.sha256}: {destination!r} is not under registry/")
    name = destination[len(prefix):]
    tag = None
    if entry.kind in ("image-config", "image-layer"):
        repository, _, rest = name.rpartition("/")
        valid = rest == "blobs"
    elif entry.kind == "image-tag":
        repository, _, tag = name.rpartition(":")
        valid = "/" not in tag and bool(tag)
    else:
        repository, _, digest = name.partition("@")
        valid = digest == f"sha256:{entry.sha256}"
    if not valid or not repository:
        raise InvalidInputError(
            f"bundle entry {entry.sha256}: {destination!r} is no {entry.kind} destination"
        )
    return ImageBlob(entry.kind, repository, entry.sha256, entry.media_type, tag)


def _sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
