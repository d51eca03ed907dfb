"""Images by digest: walked from a registry or an OCI layout, every part checked, bytes exact."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from ecohash.bundle import oci
from ecohash.bundle.contents import ContentSources, image_items
from ecohash.bundle.registry_client import ImageName
from ecohash.bundle.registrypush import RegistryClient
from ecohash.errors import EcohashError
from tests.bundle.local_registry import local_registry, unavailable_reason

FILES = {"/usr/local/bin/hello": (b"#!/bin/sh\necho hello from the lab image\n", 0o755)}


def make_index(tmp_path: Path) -> tuple[Path, str]:
    """A layout whose top is an index over two manifests sharing a layer (as multi-arch images do)."""
    layout = tmp_path / "layout"
    first = oci.write_layout(layout, FILES, ref="v1")
    second = oci.write_layout(layout, {**FILES, "/etc/motd": (b"second\n", 0o644)}, ref="v2")
    blobs = layout / "blobs" / "sha256"
    index = {"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": [
        {"mediaType": oci.OCI_MANIFEST, "digest": digest,
         "size": (blobs / digest.split(":")[1]).stat().st_size} for digest in (first, second)]}
    # Spaces and key order a re-serialiser would not keep: the digest must survive anyway.
    data = json.dumps(index, indent=3).encode()
    digest = oci.digest_of(data)
    (blobs / digest.split(":")[1]).write_bytes(data)
    return layout, digest


def test_the_layout_writer_is_deterministic(tmp_path: Path) -> None:
    first = oci.write_layout(tmp_path / "a", FILES, ref="v1")
    assert oci.write_layout(tmp_path / "b", FILES, ref="v1") == first
    assert oci.layout_digests(tmp_path / "a") == {first: oci.OCI_MANIFEST}
    assert (tmp_path / "a" / "oci-layout").read_text() == '{"imageLayoutVersion":"1.0.0"}\n'


def test_an_image_from_a_layout_keeps_every_documents_bytes(tmp_path: Path) -> None:
    layout, digest = make_index(tmp_path)
    items = image_items("docker.io/ecohash/lab-image", "v1", digest, tmp_path / "work",
                        ContentSources(oci_layouts=(layout,)))
    kinds = [item.kind for item in items]
    assert kinds.count("image-index") == 1 and kinds.count("image-manifest") == 2
    assert kinds.count("image-config") == 2
    # The shared layer is carried once; the second image's own layer too.
    assert kinds.count("image-layer") == 2
    for item in items:
        assert hashlib.sha256(item.path.read_bytes()).hexdigest() == item.sha256
        blob = layout / "blobs" / "sha256" / item.sha256
        assert item.path.read_bytes() == blob.read_bytes()
    index, tag = items[0], items[-1]
    assert (index.destination, index.media_type) == (f"registry/ecohash/lab-image@{digest}", oci.OCI_INDEX)
    assert (tag.kind, tag.destination, tag.sha256) == ("image-tag", "registry/ecohash/lab-image:v1",
                                                       digest.split(":")[1])
    config = next(item for item in items if item.kind == "image-config")
    assert (config.destination, config.media_type) == ("registry/ecohash/lab-image/blobs", oci.OCI_CONFIG)


@pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))
def test_an_image_round_trips_through_a_registry_by_digest(tmp_path: Path) -> None:
    layout, digest = make_index(tmp_path)
    parts = oci.walk(digest, oci.layout_fetcher(layout), tmp_path / "store", what="test image")
    with local_registry(tmp_path) as url:
        client = RegistryClient(url)  # the client `bundle load` pushes with
        for part in reversed(parts):  # blobs before the manifests that name them
            if part.kind in ("image-config", "image-layer"):
                client.push_blob("ecohash/lab-image", part.digest, part.path)
            else:
                client.put_manifest("ecohash/lab-image", part.digest, part.path.read_bytes(), part.media_type)
        assert client.manifest_digest("ecohash/lab-image", digest) == digest
        items = image_items(f"{url}/ecohash/lab-image", None, digest,
                            tmp_path / "pulled", ContentSources())
        assert [(item.kind, item.sha256) for item in items] == [
            (part.kind, part.digest.split(":")[1]) for part in parts]
        # A registry serving other bytes for a digest is refused, and nothing is kept.
        layer = next(part for part in parts if part.kind == "image-layer")
        stored = next((tmp_path / "storage").rglob(f"blobs/sha256/*/{layer.digest.split(':')[1]}/data"))
        stored.write_bytes(b"tampered")
        with pytest.raises(EcohashError, match="does not match its digest: refused") as error:
            image_items(f"{url}/ecohash/lab-image", None, digest,
                        tmp_path / "tampered", ContentSources())
        assert layer.digest in str(error.value)
        assert not (tmp_path / "tampered" / "sha256" / layer.digest.split(":")[1]).exists()


def test_a_layout_missing_a_blob_is_named(tmp_path: Path) -> None:
    layout, digest = make_index(tmp_path)
    manifest = json.loads((layout / "blobs/sha256" / digest.split(":")[1]).read_bytes())["manifests"][1]
    (layout / "blobs/sha256" / manifest["digest"].split(":")[1]).unlink()
    with pytest.raises(EcohashError, match=f"has no blob {manifest['digest']}"):
        image_items("docker.io/x/y", None, digest, tmp_path / "work", ContentSources(oci_layouts=(layout,)))


@pytest.mark.parametrize(("image", "registry", "repository"), [
    ("docker.io/vllm/vllm-openai", "https://registry-1.docker.io", "vllm/vllm-openai"),
    ("busybox", "https://registry-1.docker.io", "library/busybox"),
    ("nvcr.io/nvidia/k8s-device-plugin", "https://nvcr.io", "nvidia/k8s-device-plugin"),
    ("127.0.0.1:5000/ecohash/lab", "https://127.0.0.1:5000", "ecohash/lab"),
    ("http://127.0.0.1:5000/ecohash/lab", "http://127.0.0.1:5000", "ecohash/lab"),
])
def test_image_names(image: str, registry: str, repository: str) -> None:
    assert ImageName.parse(image) == ImageName(registry, repository)
