"""Which site a signed bundle may load into: its own, from its lock, and not back in time."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecohash.bundle.binding import BundleRefusedError, LoadTarget, check_meant_for, check_not_older
from ecohash.bundle.manifest import Manifest
from ecohash.errors import EcohashError
from tests.bundle.signed import STANDARD, sha256

TARGET = LoadTarget("tx-odessa", STANDARD, str(STANDARD))


def manifest(site: str | None, standard_sha256: str = sha256(STANDARD.read_bytes())) -> Manifest:
    return Manifest(created="2026-11-02T10:00:00Z", standard_name="ecohash-node", standard_sha256=standard_sha256,
                    site=site, base_manifest_sha256=None, entries=())


@pytest.mark.parametrize("site", ["tx-odessa", None])
def test_the_sites_own_bundle_and_a_standard_bundle_from_its_lock_are_meant_for_it(site: str | None) -> None:
    check_meant_for(manifest(site), TARGET, Path("bundle"))


def test_a_standard_bundle_from_another_lock_is_refused() -> None:
    with pytest.raises(BundleRefusedError, match=r"^bundle: built from standard ecohash-node \(sha256 0{64}\), "
                                                 rf"but site tx-odessa is locked to {STANDARD} "):
        check_meant_for(manifest(None, "0" * 64), TARGET, Path("bundle"))


def current_created(tmp_path: Path, created: str) -> Path:
    release = tmp_path / "releases" / "r1"
    release.mkdir(parents=True)
    (release / "manifest.json").write_text(f'{{"created": "{created}"}}\n')
    (tmp_path / "current").symlink_to("releases/r1")
    return tmp_path / "current"


def test_no_current_release_and_the_same_or_a_later_date_are_no_downgrade(tmp_path: Path) -> None:
    assert check_not_older("2026-01-01T00:00:00Z", tmp_path / "current", allow_downgrade=False,
                           bundle=Path("b")) is None
    current = current_created(tmp_path, "2026-11-02T10:00:00Z")
    for created in ("2026-11-02T10:00:00Z", "2026-11-02T10:00:01Z"):
        assert check_not_older(created, current, allow_downgrade=False, bundle=Path("b")) is None


def test_an_older_bundle_is_refused_unless_allowed_and_then_says_what_it_replaces(tmp_path: Path) -> None:
    current = current_created(tmp_path, "2026-11-02T10:00:00Z")
    with pytest.raises(BundleRefusedError, match=r"^b: created 2026-11-02T09:59:59Z, before the release the site "
                                                 r"runs \(2026-11-02T10:00:00Z, releases/r1\); refused"):
        check_not_older("2026-11-02T09:59:59Z", current, allow_downgrade=False, bundle=Path("b"))
    assert check_not_older("2026-11-02T09:59:59Z", current, allow_downgrade=True,
                           bundle=Path("b")) == "2026-11-02T10:00:00Z"


def test_a_current_release_of_unknown_age_refuses_the_load(tmp_path: Path) -> None:
    current = current_created(tmp_path, "yesterday")
    with pytest.raises(EcohashError, match=r"created 'yesterday' is not YYYY-MM-DDTHH:MM:SSZ; refused"):
        check_not_older("2026-11-02T10:00:00Z", current, allow_downgrade=False, bundle=Path("b"))
