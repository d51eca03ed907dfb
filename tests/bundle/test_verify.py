"""verify: the signature before anything else, then every blob; each bad one named, exit 2."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from ecohash.bundle import keys
from ecohash.bundle.verify import BundleInvalidError, check_bundle, verify_bundle
from tests.bundle.signed import CONTENTS, blob, build, sha256, write_items

K3S = CONTENTS["files/k3s/v1.35.6+k3s1/k3s"]
DEB = CONTENTS["apt/containerd.io_1.7.27-1_amd64.deb"]


@pytest.fixture
def key() -> keys.SecretKey:
    return keys.generate()


@pytest.fixture
def bundle(tmp_path, key) -> Path:
    out = tmp_path / "bundle"
    build(out, key, write_items(tmp_path / "src", CONTENTS))
    return out


def refusal(bundle: Path, key: keys.PublicKey, base: Path | None = None) -> list[str]:
    with pytest.raises(BundleInvalidError) as raised:
        verify_bundle(bundle, key, base)
    assert raised.value.exit_code == 2
    return str(raised.value).splitlines()


def test_a_good_bundle_verifies_and_every_byte_is_hashed(bundle, key):
    result = check_bundle(bundle, key.public)
    assert result.checked_bytes == sum(len(data) for data in set(CONTENTS.values()))
    assert result.from_base == ()


def test_missing_truncated_and_altered_blobs_are_each_named_with_where_they_go(bundle, key):
    blob(bundle, K3S).unlink()
    blob(bundle, DEB).write_bytes(DEB[:-1])
    altered = bytearray(b"chart")
    altered[0] ^= 1
    blob(bundle, b"chart").write_bytes(bytes(altered))
    assert refusal(bundle, key.public) == [
        f"{bundle}: 3 of 3 blobs missing, truncated or altered; the bundle is refused",
        f"{blob(bundle, DEB)}: truncated: {len(DEB) - 1} of {len(DEB)} bytes (apt/containerd.io_1.7.27-1_amd64.deb)",
        f"{blob(bundle, b'chart')}: altered: its sha256 is {sha256(bytes(altered))} "
        "(files/gpu-operator/v25.3.4/gpu-operator-v25.3.4.tgz and 1 more)",
        f"{blob(bundle, K3S)}: missing (files/k3s/v1.35.6+k3s1/k3s)",
    ]


def test_a_blob_grown_longer_is_altered(bundle, key):
    with blob(bundle, DEB).open("ab") as file:
        file.write(b"!")
    assert refusal(bundle, key.public)[1] == (
        f"{blob(bundle, DEB)}: altered: {len(DEB) + 1} bytes, expected {len(DEB)} "
        "(apt/containerd.io_1.7.27-1_amd64.deb)")


def test_an_altered_manifest_is_refused_before_any_of_it_is_read(bundle, key):
    manifest = bundle / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"site": "lab"', '"site": "tx-odessa"'))
    assert refusal(bundle, key.public) == [
        f"{bundle}/manifest.json.minisig: the signature does not match the signed file: it was altered after "
        "signing; the bundle is refused"]


def test_a_manifest_that_no_longer_parses_is_refused_by_its_signature_first(bundle, key):
    (bundle / "manifest.json").write_text("not json")
    assert "the signature does not match the signed file" in refusal(bundle, key.public)[0]


def test_another_sites_key_is_refused(bundle, key):
    other = keys.generate()
    assert refusal(bundle, other.public) == [
        f"{bundle}/manifest.json.minisig: signed by key {key.public.key_id_text}, not by this site's key "
        f"{other.public.key_id_text}; the bundle is refused"]


def test_an_unsigned_bundle_is_refused(bundle, key):
    (bundle / "manifest.json.minisig").unlink()
    assert refusal(bundle, key.public) == [
        f"{bundle}/manifest.json.minisig: missing: the bundle is unsigned, or its build did not finish; refused"]


def test_debians_minisign_verifies_a_bundle_and_refuses_a_tampered_manifest(bundle, key, tmp_path):
    minisign = shutil.which("minisign")
    assert minisign, "minisign is not installed: scripts/install --test installs it (apt)"
    public = tmp_path / "site.pub"
    public.write_text(key.public.text())
    command = [minisign, "-Vm", bundle / "manifest.json", "-p", public]
    accepted = subprocess.run(command, capture_output=True, text=True)
    assert accepted.returncode == 0, accepted.stderr
    assert "\tsite:lab\tstandard:ecohash-node-2026.11\t" in accepted.stdout
    manifest = bundle / "manifest.json"
    manifest.write_bytes(manifest.read_bytes().replace(sha256(K3S).encode(), sha256(b"evil").encode()))
    refused = subprocess.run(command, capture_output=True, text=True)
    assert refused.returncode != 0 and "Signature verification failed" in refused.stderr


@pytest.fixture
def delta(tmp_path, key, bundle) -> Path:
    out = tmp_path / "delta"
    build(out, key, write_items(tmp_path / "new-src", {**CONTENTS, "files/k3s/v1.35.6+k3s1/k3s": b"new k3s"}),
          base=bundle)
    return out


def test_a_delta_checks_the_blobs_it_holds_and_names_those_it_leaves_to_its_base(delta, key):
    result = check_bundle(delta, key.public)
    assert result.checked_bytes == len(b"new k3s")
    assert sorted(result.from_base) == sorted({sha256(DEB), sha256(b"chart")})


def test_a_delta_with_its_base_checks_the_bases_blobs_too(delta, bundle, key):
    result = check_bundle(delta, key.public, base=bundle)
    assert result.from_base == () and result.checked_bytes == len(DEB) + len(b"chart") + len(b"new k3s")
    blob(bundle, DEB).unlink()
    assert refusal(delta, key.public, base=bundle)[1:] == [
        f"{blob(bundle, DEB)}: missing (apt/containerd.io_1.7.27-1_amd64.deb)"]


def test_a_delta_refuses_a_base_it_was_not_built_from(delta, tmp_path, key):
    other = tmp_path / "other"
    build(other, key, write_items(tmp_path / "other-src", {"files/x": b"x"}))
    [line] = refusal(delta, key.public, base=other)
    assert line.startswith(f"{other}: not this delta's base: its manifest's sha256 is ")


def verify_in_time(bundle: Path, key: keys.PublicKey, base: Path | None = None) -> list[str]:
    """refusal(), on a thread: a verify that opened a FIFO would wait for a writer forever."""
    found: list[list[str]] = []
    worker = threading.Thread(target=lambda: found.append(refusal(bundle, key, base)), daemon=True)
    worker.start()
    worker.join(timeout=20)
    assert found, "verify blocked (or failed otherwise) on a bundle file that is not a regular file"
    return found[0]


def test_a_fifo_or_a_link_in_a_bundle_is_refused_unopened(tmp_path, key):
    out = tmp_path / "bundle"
    build(out, key, write_items(tmp_path / "src", {"files/empty": b"", "files/k3s/v1.35.6+k3s1/k3s": K3S}))
    blob(out, b"").unlink()
    os.mkfifo(blob(out, b""))  # its size, 0, is the one the manifest says
    # A link to the very bytes the manifest names: still not the bundle's own file.
    (tmp_path / "elsewhere").write_bytes(K3S)
    blob(out, K3S).unlink()
    blob(out, K3S).symlink_to(tmp_path / "elsewhere")
    assert verify_in_time(out, key.public) == [
        f"{out}: 2 of 2 blobs missing, truncated or altered; the bundle is refused",
        f"{blob(out, b'')}: not a regular file but a FIFO; refused (files/empty)",
        f"{blob(out, K3S)}: not a regular file but a symbolic link; refused (files/k3s/v1.35.6+k3s1/k3s)",
    ]


def test_a_fifo_for_the_manifest_is_refused_unopened(bundle, key):
    (bundle / "manifest.json").unlink()
    os.mkfifo(bundle / "manifest.json")
    assert verify_in_time(bundle, key.public) == [
        f"{bundle / 'manifest.json'}: not a regular file but a FIFO; refused"]


def test_a_fifo_for_a_bases_manifest_is_refused_unopened(tmp_path, key):
    base, delta = tmp_path / "base", tmp_path / "delta"
    build(base, key, write_items(tmp_path / "src", CONTENTS))
    build(delta, key, write_items(tmp_path / "src2", {**CONTENTS, "files/new": b"new"}), base=base)
    (base / "manifest.json").unlink()
    os.mkfifo(base / "manifest.json")
    assert verify_in_time(delta, key.public, base) == [
        f"{base / 'manifest.json'}: not a regular file but a FIFO; refused"]
