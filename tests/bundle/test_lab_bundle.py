"""The lab runs from a bundle: `lab up` builds its SIMULATED content and its image into a
signed bundle, verifies and loads it; the mirror serves the release, the registry the image."""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

import ecohash.bundle.load
from ecohash.bundle import keys
from ecohash.bundle import manifest as manifests
from ecohash.bundle.build import build_bundle
from ecohash.bundle.items import Item
from ecohash.bundle.load import LoadTarget, load_verified
from ecohash.bundle.verify import BundleInvalidError
from ecohash.commands.main import cli
from ecohash.lab import lifecycle, mirror, simdriver, simimage
from ecohash.lab.inventory import SITE_NAME
from ecohash.standard import load_standard
from tests.labhosts import Lab

pytestmark = pytest.mark.lab


def test_the_mirror_serves_the_loaded_release(lab: Lab) -> None:
    current = lab.paths.mirror_dir / "current"
    served = urllib.request.urlopen(f"{mirror.mirror_url()}/manifest.json", timeout=10).read()
    assert served == (lab.paths.bundle / "manifest.json").read_bytes()
    assert os.readlink(current).startswith("releases/")
    packages = urllib.request.urlopen(f"{mirror.mirror_url()}/apt/Packages", timeout=10).read()
    assert b"Package: nvidia-driver-sim\n" in packages and b"Package: containerd\n" in packages


def test_a_tampered_bundle_is_refused_before_anything_is_loaded(lab: Lab, tmp_path: Path) -> None:
    public = keys.read_public(lab.paths.bundle_public_key)
    tampered = tmp_path / "bundle"
    shutil.copytree(lab.paths.bundle, tampered)
    blob = next((tampered / "blobs" / "sha256").iterdir())
    blob.chmod(0o644)
    blob.write_bytes(blob.read_bytes() + b"\n")
    before = os.readlink(lab.paths.mirror_dir / "current")
    with pytest.raises(BundleInvalidError, match=blob.name):
        load_verified(tampered, public, LoadTarget(SITE_NAME, lab.paths.standard_file, "lab"),
                      mirror_root=tmp_path / "mirror",
                      registry_url=lifecycle.registry_url(), mirror_key=lab.paths.mirror_key)
    assert not (tmp_path / "mirror").exists()
    assert os.readlink(lab.paths.mirror_dir / "current") == before


def test_a_node_pulls_the_lab_image_from_the_registry(lab: Lab) -> None:
    node = lab.host_names[0]
    lab.use_site_mirror(node)
    runtime = load_standard().containerd["debian12"]
    wanted = " ".join(f"{name}={pinned.version}" for name, pinned in runtime.items())
    lab.ssh(node, f"apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -qy {wanted}"
                  " && systemctl start containerd")
    standard = load_standard(lab.paths.standard_file).inference_runtime
    assert standard.image == simimage.IMAGE
    host = lifecycle.registry_url().removeprefix("http://")
    reference = f"{host}/{simimage.IMAGE.split('/', 1)[1]}@{standard.digest}"
    lab.ssh(node, f"ctr --namespace k8s.io images pull --plain-http {reference}")
    listed = lab.ssh(node, "ctr --namespace k8s.io images list --quiet").stdout.split()
    assert reference in listed


def test_a_blob_swapped_after_verify_never_reaches_the_labs_mirror(
    lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The lab's own key is gone with the process that made it: this bundle (the lab's blobs
    # and one new file) is signed by a key of the test's, which the load is told to trust.
    manifest, _ = manifests.read(lab.paths.bundle)
    blobs = lab.paths.bundle / "blobs" / "sha256"
    (tmp_path / "new").write_bytes(b"new on this disk\n")
    items = [Item(e.kind, e.destination, blobs / e.sha256, e.media_type, e.sha256) for e in manifest.entries]
    items.append(Item("file", "files/swapped/new", tmp_path / "new"))
    secret = keys.generate()
    bundle = tmp_path / "bundle"
    build_bundle(items, bundle, standard_file=lab.paths.standard_file, site_name=SITE_NAME, key=secret)
    swapped = bundle / "blobs" / "sha256" / hashlib.sha256(b"new on this disk\n").hexdigest()
    verify = ecohash.bundle.load.verify_bundle

    def verify_then_swap(directory: Path, public_key: keys.PublicKey) -> manifests.Manifest:
        verified = verify(directory, public_key)
        swapped.write_bytes(b"NEW ON THIS DISK\n")  # the disk serves other bytes the second time
        return verified

    monkeypatch.setattr(ecohash.bundle.load, "verify_bundle", verify_then_swap)
    store = lab.paths.mirror_dir / "blobs" / "sha256"
    before = (os.readlink(lab.paths.mirror_dir / "current"), sorted(os.listdir(store)))
    with pytest.raises(BundleInvalidError, match=rf"^{swapped}: changed since it was verified: its sha256 is "):
        load_verified(bundle, secret.public, LoadTarget(SITE_NAME, lab.paths.standard_file, "lab"),
                      mirror_root=lab.paths.mirror_dir, registry_url=lifecycle.registry_url(),
                      mirror_key=lab.paths.mirror_key)
    assert (os.readlink(lab.paths.mirror_dir / "current"), sorted(os.listdir(store))) == before


def test_the_public_commands_build_verify_and_load_the_labs_bundle(lab: Lab, tmp_path: Path) -> None:
    """`bundle build lab --deb`, `bundle verify` and `bundle load`, as at a site: no internal path."""
    def run(*args: str | Path) -> None:
        result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
        assert result.exit_code == 0, result.output

    made_key = not keys.secret_key_file(SITE_NAME).exists()
    if made_key:
        run("bundle", "keygen", SITE_NAME)
    try:
        out = tmp_path / "bundle"
        run("bundle", "build", SITE_NAME, "-o", out, "--deb", lab.paths.simulated_debs)
        run("bundle", "verify", out, "--site", SITE_NAME)
        # Into a mirror root of its own: the lab's mirror stays what the other lab tests expect.
        run("bundle", "load", out, SITE_NAME, "--mirror-root", tmp_path / "mirror",
            "--mirror-key", lab.paths.mirror_key)
    finally:
        if made_key:
            keys.secret_key_file(SITE_NAME).unlink()
            keys.public_key_file(SITE_NAME).unlink()
    release = tmp_path / "mirror" / "current"
    driver = simdriver.deb_file_name()
    assert (release / "apt" / driver).read_bytes() == (lab.paths.simulated_debs / driver).read_bytes()
    packages = (release / "apt" / "Packages").read_text()
    assert "Package: nvidia-driver-sim\n" in packages and "Package: containerd\n" in packages
