"""Which site a signed bundle may be loaded into: the one it names, whose lock it was built from,
and one that does not run a newer release.

A signature says who built a bundle, not for whom or when: every bundle a site's key ever
signed stays valid, and one key signs `--standard` bundles for no site in particular. So the
signed manifest's `site`, `standard.sha256` and `created` are compared with the site before
anything of the bundle is used. A bundle for another site, or from a standard the site's
lock is not, would put on its nodes packages that nothing in its files names; an older one
would roll the site back silently, its old packages signed again by the site mirror's key.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ecohash.bundle.manifest import MANIFEST_FILE_NAME, Manifest, is_created
from ecohash.errors import EcohashError, InvalidInputError
from ecohash.inventory.site import Site
from ecohash.standard import standard_file_of


class BundleRefusedError(InvalidInputError):
    """A validly signed bundle that is not for this site, its standard, or is older than what it runs."""


@dataclass(frozen=True)
class LoadTarget:
    """The site a bundle is loaded into, as its files say."""

    site: str
    standard_file: Path  # the site's node-standard lock
    standard_named_at: str  # where the site names that lock: FILE:LINE, or the default file
    allow_downgrade: bool = False

    @classmethod
    def of(cls, site: Site, *, allow_downgrade: bool = False) -> LoadTarget:
        named = site.provisioning.standard
        where = (f"{site.file}:{site.line_of(['spec', 'provisioning', 'standard'])}" if named
                 else str(standard_file_of(site)))
        return cls(site.name, standard_file_of(site), where, allow_downgrade)


def check_meant_for(manifest: Manifest, target: LoadTarget, bundle: Path) -> None:
    """Refuse a bundle built for another site, or from another standard than the site's lock.

    A `--standard` bundle (site null) fits every site whose lock it was built from.
    """
    if manifest.site is not None and manifest.site != target.site:
        raise BundleRefusedError(f"{bundle}: built for site {manifest.site}, not {target.site}; refused, "
                                 "nothing was loaded")
    try:
        lock_sha256 = hashlib.sha256(target.standard_file.read_bytes()).hexdigest()
    except OSError as error:
        raise InvalidInputError(f"{target.standard_named_at}: cannot read site {target.site}'s node standard "
                                f"{target.standard_file}: {error.strerror or error}") from None
    if lock_sha256 != manifest.standard_sha256:
        raise BundleRefusedError(
            f"{bundle}: built from standard {manifest.standard_name} (sha256 {manifest.standard_sha256}), "
            f"but site {target.site} is locked to {target.standard_file} (sha256 {lock_sha256}, named at "
            f"{target.standard_named_at}); refused, nothing was loaded"
        )


def check_not_older(created: str, current: Path, *, allow_downgrade: bool, bundle: Path) -> str | None:
    """Refuse a bundle created before the release `current` names, unless the downgrade is allowed.

    Returns that release's `created` when this is an allowed downgrade, else None. Both dates
    are signed manifests' (manifest.is_created: their text sorts as time does).
    """
    if not os.path.lexists(current):
        return None
    running = _created_of(current)
    if created >= running:
        return None
    if not allow_downgrade:
        raise BundleRefusedError(
            f"{bundle}: created {created}, before the release the site runs ({running}, "
            f"{os.readlink(current)}); refused, nothing was loaded: it would roll the site back "
            "(--allow-downgrade loads it on purpose)"
        )
    return running


def _created_of(current: Path) -> str:
    path = current / MANIFEST_FILE_NAME
    try:
        created = json.loads(path.read_text(encoding="utf-8"))["created"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        # The site's own record, written by a load: unreadable means someone changed it.
        raise EcohashError(f"{path}: cannot tell when the release the site runs was created ({error}); "
                           "refused, nothing was loaded") from None
    if not is_created(created):
        raise EcohashError(f"{path}: created {created!r} is not YYYY-MM-DDTHH:MM:SSZ; refused, nothing was "
                           "loaded")
    return created
