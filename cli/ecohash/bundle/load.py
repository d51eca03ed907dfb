"""`ecohash bundle load`: verify a bundle, then publish it into the site's mirror and registry.

Verify comes first, always: nothing of a bundle is copied, indexed or pushed before its
signature and every blob check out (a delta's base blobs are found in the site's store,
where loading the base put them), and before its signed manifest says it is meant for this
site, its lock, and not older than what the site runs (ecohash.bundle.binding). Publishing
is ecohash.bundle.publish.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ecohash.bundle import keys
from ecohash.bundle.binding import LoadTarget, check_meant_for
from ecohash.bundle.keys import PublicKey
from ecohash.bundle.manifest import Manifest
from ecohash.bundle.publish import LoadResult, publish
from ecohash.bundle.verify import verify_bundle
from ecohash.inventory.site import Site

__all__ = ["LoadResult", "LoadTarget", "load_bundle", "load_verified"]


def load_bundle(
    directory: Path, site: Site, *, mirror_root: Path, registry_url: str | None, mirror_key: Path,
    on_verified: Callable[[Manifest], None] | None = None, allow_downgrade: bool = False,
) -> LoadResult:
    """Verify the bundle with the site's public key, then publish it; the mirror's keyring
    must be the one the site file pins (nodes would refuse the mirror otherwise)."""
    return load_verified(
        directory,
        keys.load_public(site.name),
        LoadTarget.of(site, allow_downgrade=allow_downgrade),
        mirror_root=mirror_root,
        registry_url=registry_url,
        mirror_key=mirror_key,
        expected_keyring=_pinned_keyring(site),
        on_verified=on_verified,
    )


def load_verified(
    directory: Path,
    public_key: PublicKey,
    target: LoadTarget,
    *,
    mirror_root: Path,
    registry_url: str | None,
    mirror_key: Path,
    expected_keyring: tuple[str, str] | None = None,
    on_verified: Callable[[Manifest], None] | None = None,
) -> LoadResult:
    """verify_bundle with `public_key`, check it is meant for `target`, then publish.
    `expected_keyring`: (sha256, where it is pinned); a mirror key exporting another keyring
    is refused before `current` switches. `on_verified` runs between the two (the CLI starts
    a site registry there if need be)."""
    manifest = verify_bundle(directory, public_key)
    check_meant_for(manifest, target, directory)
    if on_verified is not None:
        on_verified(manifest)
    return publish(
        directory,
        manifest.text().encode(),
        manifest.entries,
        mirror_root=mirror_root,
        registry_url=registry_url,
        mirror_key=mirror_key,
        expected_keyring=expected_keyring,
        created=manifest.created,
        allow_downgrade=target.allow_downgrade,
    )


def _pinned_keyring(site: Site) -> tuple[str, str] | None:
    mirror = site.provisioning.mirror
    if mirror is None:
        return None
    line = site.line_of(["spec", "provisioning", "mirror", "keyring_sha256"])
    return mirror.keyring_sha256, f"{site.file}:{line}"

