"""Publishing a verified bundle: the site's blob store, a signed mirror release switched in
whole, and the images pushed byte for byte into Debian's docker-registry."""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from pathlib import Path

import pytest

from ecohash.bundle.publish import LoadResult, publish
from ecohash.bundle.registrypush import MANIFEST_MEDIA_TYPES, PushCount, site_repository
from ecohash.errors import EcohashError, InvalidInputError
from tests.bundle.loadhelpers import OCI_MANIFEST, HandBundle, free_port, gpgv, registry

pytestmark = pytest.mark.skipif(shutil.which("docker-registry") is None,
                                reason="needs Debian's docker-registry (apt-get install docker-registry)")
__all__ = ["registry"]  # the fixture


@pytest.fixture(scope="module")
def mirror_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mirror-key") / "gnupg"


def first_bundle(directory: Path) -> HandBundle:
    bundle = HandBundle(directory)
    bundle.add_deb("ecohash-test-tool", "1.0-1")
    bundle.add("file", "files/k3s/v1.0.0/k3s", b"#!/bin/sh\necho SIMULATED k3s\n")
    bundle.add_image("docker.io/ecohash/lab-image", "v1", b"first\n")
    return bundle


def load(bundle: HandBundle, mirror_root: Path, registry_url: str | None, mirror_key: Path
         ) -> LoadResult:
    return publish(bundle.directory, bundle.manifest_bytes(), bundle.entries,
                   mirror_root=mirror_root, registry_url=registry_url, mirror_key=mirror_key)


def get(url: str, accept: str | None = None) -> tuple[bytes, dict[str, str]]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read(), dict(response.headers)


def test_a_load_publishes_a_signed_release_and_the_images(
    tmp_path: Path, registry: str, mirror_key: Path
) -> None:
    bundle = first_bundle(tmp_path / "bundle")
    digest = [e for e in bundle.entries if e.kind == "image-manifest"][0].sha256
    result = load(bundle, tmp_path / "mirror", registry, mirror_key)

    current = tmp_path / "mirror" / "current"
    assert os.readlink(current) == f"releases/{result.release}"
    assert result.release_dir == tmp_path / "mirror" / "releases" / result.release
    assert result.blobs_copied == len(bundle.entries) - 1  # the tag is the manifest's blob
    assert (current / "files/k3s/v1.0.0/k3s").read_bytes() == b"#!/bin/sh\necho SIMULATED k3s\n"
    packages = (current / "apt" / "Packages").read_text()
    assert "Package: ecohash-test-tool\nVersion: 1.0-1\n" in packages
    assert "Filename: ./ecohash-test-tool_1.0-1_all.deb" in packages
    keyring = current / "keys" / "site-mirror.gpg"
    assert gpgv(keyring, current / "apt" / "InRelease").returncode == 0
    # The signature covers the index: a Release that lists another Packages fails.
    (tmp_path / "Release").write_text((current / "apt" / "Release").read_text() + "x\n")
    shutil.copy(current / "apt" / "Release.gpg", tmp_path / "Release.gpg")
    assert gpgv(keyring, tmp_path / "Release.gpg").returncode != 0

    # The manifest is served with the very bytes (and so the digest) the bundle carries.
    served, headers = get(f"{registry}/v2/ecohash/lab-image/manifests/sha256:{digest}", OCI_MANIFEST)
    assert served == (bundle.directory / "blobs" / "sha256" / digest).read_bytes()
    assert headers["Docker-Content-Digest"] == f"sha256:{digest}"
    _, tagged = get(f"{registry}/v2/ecohash/lab-image/manifests/v1", ", ".join(MANIFEST_MEDIA_TYPES))
    assert tagged["Docker-Content-Digest"] == f"sha256:{digest}"
    layer = [e for e in bundle.entries if e.kind == "image-layer"][0]
    blob, _ = get(f"{registry}/v2/ecohash/lab-image/blobs/sha256:{layer.sha256}")
    assert blob == (bundle.directory / "blobs" / "sha256" / layer.sha256).read_bytes()
    assert result.pushed == PushCount(blobs_sent=2, manifests_put=1, tags_put=1)


def snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    """Every path under root: inode, mtime and (for symlinks) target."""
    found = {}
    for path in [root, *root.rglob("*")]:
        stat = path.lstat()
        found[str(path)] = (stat.st_ino, stat.st_mtime_ns,
                            os.readlink(path) if path.is_symlink() else "")
    return found


def test_a_second_load_of_the_same_bundle_changes_nothing(
    tmp_path: Path, registry: str, mirror_key: Path
) -> None:
    bundle = first_bundle(tmp_path / "bundle")
    load(bundle, tmp_path / "mirror", registry, mirror_key)
    before = snapshot(tmp_path / "mirror")
    storage = snapshot(tmp_path / "registry" / "storage")

    again = load(bundle, tmp_path / "mirror", registry, mirror_key)

    assert (again.blobs_copied, again.release_built, again.switched) == (0, False, False)
    assert again.pushed == PushCount()
    assert snapshot(tmp_path / "mirror") == before
    assert snapshot(tmp_path / "registry" / "storage") == storage


def test_a_new_release_switches_current_and_keeps_the_blobs_it_shares(
    tmp_path: Path, registry: str, mirror_key: Path
) -> None:
    first = load(first_bundle(tmp_path / "one"), tmp_path / "mirror", registry, mirror_key)
    second_bundle = first_bundle(tmp_path / "two")
    second_bundle.add("file", "files/extra", b"new\n")
    second = load(second_bundle, tmp_path / "mirror", registry, mirror_key)
    assert second.release != first.release and second.switched
    assert second.blobs_copied == 1
    assert os.readlink(tmp_path / "mirror" / "current") == f"releases/{second.release}"
    assert first.release_dir.is_dir()  # the old release stays: nodes mid-install still read it


def test_a_load_that_fails_mid_way_leaves_current_as_it_was(
    tmp_path: Path, registry: str, mirror_key: Path
) -> None:
    first = load(first_bundle(tmp_path / "one"), tmp_path / "mirror", registry, mirror_key)
    second = first_bundle(tmp_path / "two")
    second.add_image("docker.io/ecohash/other", "v2", b"second\n")
    nobody = f"http://127.0.0.1:{free_port()}"  # the registry is gone half way through
    with pytest.raises(EcohashError, match="did not answer"):
        load(second, tmp_path / "mirror", nobody, mirror_key)
    assert os.readlink(tmp_path / "mirror" / "current") == f"releases/{first.release}"


def test_a_delta_whose_base_was_never_loaded_is_refused_before_anything_is_copied(
    tmp_path: Path, registry: str, mirror_key: Path
) -> None:
    delta = first_bundle(tmp_path / "delta")
    gone = [e for e in delta.entries if e.kind == "file"][0]
    (delta.directory / "blobs" / "sha256" / gone.sha256).unlink()  # "in the base"
    with pytest.raises(InvalidInputError) as refusal:
        load(delta, tmp_path / "mirror", registry, mirror_key)
    assert f"{gone.sha256} (files/k3s/v1.0.0/k3s)" in str(refusal.value)
    assert not (tmp_path / "mirror" / "blobs" / "sha256").exists()
    assert not (tmp_path / "mirror" / "current").exists()


def test_a_delta_takes_its_base_blobs_from_the_site_store(
    tmp_path: Path, registry: str, mirror_key: Path
) -> None:
    load(first_bundle(tmp_path / "base"), tmp_path / "mirror", registry, mirror_key)
    delta = first_bundle(tmp_path / "delta")
    delta.add("file", "files/extra", b"only this is new\n")
    for entry in delta.entries[:-1]:
        (delta.directory / "blobs" / "sha256" / entry.sha256).unlink(missing_ok=True)
    result = load(delta, tmp_path / "mirror", registry, mirror_key)
    assert result.blobs_copied == 1
    assert (tmp_path / "mirror" / "current" / "files/k3s/v1.0.0/k3s").is_file()


@pytest.mark.parametrize("destination", ["files/../../etc/passwd", "/etc/passwd", "apt/x.deb"])
def test_a_destination_outside_its_directory_is_refused(
    tmp_path: Path, mirror_key: Path, destination: str
) -> None:
    bundle = HandBundle(tmp_path / "bundle")
    bundle.add("file", destination, b"x")
    with pytest.raises(InvalidInputError, match="is not under files/"):
        load(bundle, tmp_path / "mirror", None, mirror_key)
    assert not (tmp_path / "mirror" / "current").exists()


def test_images_without_a_site_registry_are_refused(tmp_path: Path, mirror_key: Path) -> None:
    bundle = first_bundle(tmp_path / "bundle")
    with pytest.raises(InvalidInputError, match="names no registry"):
        load(bundle, tmp_path / "mirror", None, mirror_key)


def test_site_repository_drops_the_upstream_host_and_prefixes_the_registry_path() -> None:
    assert site_repository("docker.io/vllm/vllm-openai", "") == "vllm/vllm-openai"
    assert site_repository("docker.io/vllm/vllm-openai", "mirror") == "mirror/vllm/vllm-openai"
    assert site_repository("localhost:5000/x", "") == "x"
    assert site_repository("ecohash/lab-image", "") == "ecohash/lab-image"


def test_the_manifest_is_kept_in_the_release(tmp_path: Path, registry: str, mirror_key: Path) -> None:
    bundle = first_bundle(tmp_path / "bundle")
    result = load(bundle, tmp_path / "mirror", registry, mirror_key)
    assert json.loads((result.release_dir / "manifest.json").read_text())["entries"]
