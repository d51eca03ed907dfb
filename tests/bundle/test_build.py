"""The bundle's writer: pins checked while copying, half-built bundles finished, deltas, idempotence."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from ecohash.bundle import keys
from ecohash.bundle.build import PinMismatchError
from ecohash.bundle.items import Item
from ecohash.bundle.verify import verify_bundle
from ecohash.errors import InvalidInputError
from tests.bundle.signed import CONTENTS, blob, build, sha256, write_items


@pytest.fixture
def key() -> keys.SecretKey:
    return keys.generate()


def snapshot(bundle: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file in a bundle with its inode, modification time and bytes: a rewrite changes one."""
    return {str(p.relative_to(bundle)): (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(bundle.rglob("*")) if p.is_file()}


def test_a_bundle_holds_each_blob_once_under_its_sha256_and_a_signed_canonical_manifest(tmp_path, key):
    items = write_items(tmp_path / "src", CONTENTS)
    out = tmp_path / "bundle"
    manifest = build(out, key, items)
    assert sorted(p.name for p in (out / "blobs" / "sha256").iterdir()) == sorted(
        {sha256(data) for data in CONTENTS.values()})
    assert len(list((out / "blobs" / "sha256").iterdir())) == 3  # the chart and the wheel share bytes
    text = (out / "manifest.json").read_text()
    document = json.loads(text)
    assert text == json.dumps(document, sort_keys=True, indent=1) + "\n"
    assert document["schema"] == "ecohash.io/bundle/v1"
    assert document["site"] == "lab" and document["base"] is None
    assert document["standard"]["name"] == "ecohash-node-2026.11"
    assert document["standard"]["sha256"] == hashlib.sha256(
        (Path(__file__).parents[2] / "node-standard.lock.yml").read_bytes()).hexdigest()
    assert [(e["kind"], e["destination"]) for e in document["entries"]] == [
        ("deb", "apt/containerd.io_1.7.27-1_amd64.deb"),
        ("file", "files/gpu-operator/v25.3.4/gpu-operator-v25.3.4.tgz"),
        ("file", "files/k3s/v1.35.6+k3s1/k3s"),
        ("wheel", "wheels/ansible_core-2.19.0-py3-none-any.whl"),
    ]
    assert {e["destination"]: (e["sha256"], e["size"]) for e in document["entries"]} == {
        d: (sha256(data), len(data)) for d, data in CONTENTS.items()}
    assert verify_bundle(out, key.public) == manifest


def test_an_item_without_a_pin_is_hashed_and_stored(tmp_path, key):
    source = tmp_path / "k3s"
    source.write_bytes(b"binary")
    manifest = build(tmp_path / "bundle", key, [Item("file", "files/k3s", source)])
    assert [(e.sha256, e.size) for e in manifest.entries] == [(sha256(b"binary"), 6)]
    assert blob(tmp_path / "bundle", b"binary").read_bytes() == b"binary"


def test_a_pin_that_does_not_match_fails_closed_naming_the_item(tmp_path, key):
    items = {item.destination: item for item in write_items(tmp_path / "src", CONTENTS)}
    deb, k3s = items["apt/containerd.io_1.7.27-1_amd64.deb"], items["files/k3s/v1.35.6+k3s1/k3s"]
    wrong = Item("file", k3s.destination, k3s.path, sha256=sha256(b"what the standard pinned"))
    out = tmp_path / "bundle"
    with pytest.raises(PinMismatchError) as raised:
        build(out, key, [deb, wrong])
    assert str(raised.value) == (
        f"{k3s.path}: files/k3s/v1.35.6+k3s1/k3s: sha256 is {sha256(CONTENTS['files/k3s/v1.35.6+k3s1/k3s'])}, "
        f"not the pinned {sha256(b'what the standard pinned')}; refused (the file changed since it was pinned, "
        "or the pin is wrong)")
    assert raised.value.exit_code == 2
    # Nothing under the pinned name, no copy left over, and nothing signed.
    assert sorted(p.name for p in (out / "blobs" / "sha256").iterdir()) == [deb.sha256]
    assert not (out / "manifest.json").exists() and not (out / "manifest.json.minisig").exists()


def test_a_half_copied_bundle_is_finished_not_redone(tmp_path, key):
    items = write_items(tmp_path / "src", CONTENTS)
    out = tmp_path / "bundle"
    build(out, key, items)
    k3s = CONTENTS["files/k3s/v1.35.6+k3s1/k3s"]
    deb = CONTENTS["apt/containerd.io_1.7.27-1_amd64.deb"]
    # As an interrupted build (or `cp -r`) leaves it: one blob gone, one cut short, a
    # temporary copy, and no manifest or signature yet.
    blob(out, k3s).unlink()
    blob(out, deb).write_bytes(deb[:100])
    (out / "blobs" / "sha256" / f".{sha256(k3s)}.x1y2.tmp").write_bytes(k3s[:10])
    (out / "manifest.json").unlink()
    (out / "manifest.json.minisig").unlink()
    chart = blob(out, b"chart")
    kept = (chart.stat().st_ino, chart.stat().st_mtime_ns)
    build(out, key, items)
    assert (chart.stat().st_ino, chart.stat().st_mtime_ns) == kept  # the good blob was not copied again
    assert blob(out, k3s).read_bytes() == k3s and blob(out, deb).read_bytes() == deb
    assert not list((out / "blobs" / "sha256").glob(".*"))
    verify_bundle(out, key.public)


def test_a_second_build_over_the_same_bundle_writes_nothing(tmp_path, key):
    items = write_items(tmp_path / "src", CONTENTS)
    out = tmp_path / "bundle"
    first = build(out, key, items)
    before = snapshot(out)
    assert build(out, key, items) == first
    assert snapshot(out) == before


def test_a_build_with_other_content_replaces_the_manifest_and_drops_blobs_no_longer_listed(tmp_path, key):
    out = tmp_path / "bundle"
    build(out, key, write_items(tmp_path / "old", CONTENTS))
    new_contents = {**CONTENTS, "files/k3s/v1.35.6+k3s1/k3s": b"k3s, the next patch"}
    manifest = build(out, key, write_items(tmp_path / "new", new_contents))
    assert not blob(out, CONTENTS["files/k3s/v1.35.6+k3s1/k3s"]).exists()
    assert sorted(p.name for p in (out / "blobs" / "sha256").iterdir()) == sorted(manifest.blobs())
    verify_bundle(out, key.public)


def test_a_delta_writes_only_the_blobs_its_base_lacks_and_lists_every_entry(tmp_path, key):
    old = tmp_path / "old"
    build(old, key, write_items(tmp_path / "old-src", CONTENTS))
    new_contents = {**CONTENTS, "files/k3s/v1.35.6+k3s1/k3s": b"k3s, the next patch",
                    "models/org/model/0123abc/model.safetensors": b"weights"}
    delta = tmp_path / "delta"
    manifest = build(delta, key, write_items(tmp_path / "new-src", new_contents), base=old)
    assert sorted(p.name for p in (delta / "blobs" / "sha256").iterdir()) == sorted(
        [sha256(b"k3s, the next patch"), sha256(b"weights")])
    assert {e.destination for e in manifest.entries} == set(new_contents)
    assert manifest.base_manifest_sha256 == hashlib.sha256((old / "manifest.json").read_bytes()).hexdigest()
    assert json.loads((delta / "manifest.json").read_text())["base"] == {
        "manifest_sha256": manifest.base_manifest_sha256}


def test_two_blobs_for_one_destination_are_refused(tmp_path, key):
    items = write_items(tmp_path / "a", {"files/k3s": b"one"}) + write_items(tmp_path / "b", {"files/k3s": b"two"})
    with pytest.raises(InvalidInputError, match="^files/k3s: two different blobs for one destination"):
        build(tmp_path / "bundle", key, items)


def test_an_image_layers_share_their_repositorys_blob_destination(tmp_path, key):
    first, second = tmp_path / "l1", tmp_path / "l2"
    first.write_bytes(b"layer one")
    second.write_bytes(b"layer two")
    media = "application/vnd.oci.image.layer.v1.tar+gzip"
    manifest = build(tmp_path / "bundle", key, [
        Item("image-layer", "registry/library/app/blobs", first, media),
        Item("image-layer", "registry/library/app/blobs", second, media)])
    assert len(manifest.entries) == 2 and {e.media_type for e in manifest.entries} == {media}


@pytest.mark.parametrize(("kind", "destination", "message"), [
    ("file", "files/../../etc/passwd", "a file destination is a relative path under files/"),
    ("file", "/etc/passwd", "a file destination is a relative path under files/"),
    ("deb", "files/x.deb", "a deb destination is a relative path under apt/"),
    ("tarball", "files/x", "unknown kind 'tarball'"),
])
def test_a_destination_a_loader_must_not_write_is_refused_before_anything_is_copied(
        tmp_path, key, kind, destination, message):
    source = tmp_path / "x"
    source.write_bytes(b"x")
    with pytest.raises(InvalidInputError, match=message):
        build(tmp_path / "bundle", key, [Item(kind, destination, source)])
    assert not (tmp_path / "bundle").exists()


def test_a_directory_that_is_not_a_bundle_is_not_built_into(tmp_path, key):
    out = tmp_path / "home"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    with pytest.raises(InvalidInputError, match="not empty and not a bundle"):
        build(out, key, write_items(tmp_path / "src", CONTENTS))
    assert os.listdir(out) == ["thesis.tex"]
