"""`load`: a bundle is verified before anything of it is loaded, with the site's own key."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from ecohash.bundle import keys
from ecohash.bundle.binding import BundleRefusedError
from ecohash.bundle.build import build_bundle
from ecohash.bundle.items import Item
from ecohash.bundle.load import LoadTarget, load_bundle, load_verified
from ecohash.bundle.verify import BundleInvalidError
from ecohash.errors import InvalidInputError
from ecohash.inventory.loader import load_site
from tests.bundle.loadhelpers import HandBundle
from tests.conftest import EXAMPLE_SITE

REPO = Path(__file__).resolve().parents[2]
STANDARD = REPO / "node-standard.lock.yml"
ANY_SITE = LoadTarget("lab", STANDARD, str(STANDARD))  # the bundles here are --standard ones


def signed_bundle(tmp_path: Path, secret: keys.SecretKey) -> Path:
    sources = HandBundle(tmp_path / "sources")
    sources.add_deb("ecohash-test-tool", "1.0-1")
    sources.add("file", "files/k3s/v1.0.0/k3s", b"#!/bin/sh\necho SIMULATED k3s\n")
    items = [Item(e.kind, e.destination, sources.directory / "blobs" / "sha256" / e.sha256)
             for e in sources.entries]
    build_bundle(items, tmp_path / "bundle", standard_file=STANDARD, site_name=None, key=secret)
    return tmp_path / "bundle"


def test_a_signed_bundle_is_verified_and_loaded(tmp_path: Path) -> None:
    secret = keys.generate()
    bundle = signed_bundle(tmp_path, secret)
    result = load_verified(bundle, secret.public, ANY_SITE, mirror_root=tmp_path / "mirror", registry_url=None,
                           mirror_key=tmp_path / "gnupg")
    assert os.readlink(tmp_path / "mirror" / "current") == f"releases/{result.release}"
    assert (tmp_path / "mirror" / "current" / "manifest.json").read_bytes() == (
        bundle / "manifest.json").read_bytes()


@pytest.mark.parametrize("tamper", ["blob", "manifest", "key"])
def test_a_tampered_bundle_is_refused_before_anything_is_loaded(tmp_path: Path, tamper: str) -> None:
    secret = keys.generate()
    bundle = signed_bundle(tmp_path, secret)
    if tamper == "blob":
        blob = next((bundle / "blobs" / "sha256").iterdir())
        blob.chmod(0o644)
        blob.write_bytes(blob.read_bytes()[:-1] + b"!")
    elif tamper == "manifest":
        text = (bundle / "manifest.json").read_text()
        (bundle / "manifest.json").write_text(text.replace("k3s/v1.0.0", "k3s/v1.0.1"))
    with pytest.raises(BundleInvalidError):
        load_verified(bundle, keys.generate().public if tamper == "key" else secret.public, ANY_SITE,
                      mirror_root=tmp_path / "mirror", registry_url=None, mirror_key=tmp_path / "gnupg")
    assert not (tmp_path / "mirror").exists()
    assert not (tmp_path / "gnupg").exists()


def test_load_bundle_uses_the_sites_key_and_refuses_a_mirror_key_the_site_does_not_pin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_site: Callable[..., Path]
) -> None:
    monkeypatch.setenv("ECOHASH_STATE_DIR", str(tmp_path / "state"))
    secret_file = keys.secret_key_file("tx-odessa")
    keys.keygen("tx-odessa")
    secret = keys.SecretKey.from_text(secret_file.read_text(), str(secret_file))
    bundle = signed_bundle(tmp_path, secret)
    pinned = "ab" * 32
    site = load_site(write_site(
        EXAMPLE_SITE,
        ("  kubernetes:\n", "  provisioning:\n    mirror:\n      url: http://10.20.0.5:8080\n"
                            f"      keyring_sha256: {pinned}\n  kubernetes:\n"),
    ))
    with pytest.raises(InvalidInputError, match=rf"site.yaml:\d+: the site pins mirror keyring {pinned}"):
        load_bundle(bundle, site, mirror_root=tmp_path / "mirror", registry_url=None,
                    mirror_key=tmp_path / "gnupg")
    assert not (tmp_path / "mirror" / "current").exists()


def test_a_bundle_from_another_standard_is_refused_at_the_line_where_the_site_names_its_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_site: Callable[..., Path]
) -> None:
    monkeypatch.setenv("ECOHASH_STATE_DIR", str(tmp_path / "state"))
    keys.keygen("tx-odessa")
    bundle = signed_bundle(tmp_path, keys.load_secret("tx-odessa"))  # from the repository's standard
    (tmp_path / "own.lock.yml").write_bytes(STANDARD.read_bytes() + b"# this site's own\n")
    site_file = write_site(EXAMPLE_SITE, ("  kubernetes:\n", "  provisioning:\n    standard: own.lock.yml\n"
                                                             "  kubernetes:\n"))
    line = site_file.read_text().splitlines().index("    standard: own.lock.yml") + 1
    with pytest.raises(BundleRefusedError) as refused:
        load_bundle(bundle, load_site(site_file), mirror_root=tmp_path / "mirror", registry_url=None,
                    mirror_key=tmp_path / "gnupg")
    assert refused.value.exit_code == 2
    assert f"but site tx-odessa is locked to {tmp_path / 'own.lock.yml'} (sha256 " in str(refused.value)
    assert f", named at {site_file}:{line}); refused, nothing was loaded" in str(refused.value)
    assert not (tmp_path / "mirror").exists()
