"""A site registry for role tests on the lab, which has none yet: the site file names one,
and a node is given the pinned image under that registry's name, as a pre-pull leaves it.

The registry is the lab's site mirror, spoken to over plain http: containerd reaches it
through the hosts.toml container_runtime writes, and it answers every registry request
with 404, having no images.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager

from ecohash.lab.layout import BRIDGE_ADDRESS, MIRROR_PORT, inventory_file
from tests.labhosts import Lab

LAB_REGISTRY = f"http://{BRIDGE_ADDRESS}:{MIRROR_PORT}"
REGISTRY_HOST = f"{BRIDGE_ADDRESS}:{MIRROR_PORT}"


@contextmanager
def site_with_registry(registry: str) -> Iterator[None]:
    """The lab's site file names `registry` for a while."""
    site_file = inventory_file()
    original = site_file.read_text()
    anchor = "\n  provisioning:\n"
    assert original.count(anchor) == 1, original
    site_file.write_text(original.replace(anchor, f"{anchor}    registry: {registry}\n"))
    try:
        yield
    finally:
        site_file.write_text(original)


def _tar(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def simulated_image_archive(name: str) -> bytes:
    """An OCI image archive that containerd imports as `name`: one layer, a SIMULATED note."""
    layer_tar = _tar({"SIMULATED": b"A SIMULATED image made by ecohash's lab tests; it runs nothing.\n"})
    layer = gzip.compress(layer_tar, mtime=0)
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(layer_tar).hexdigest()}"]},
    }).encode()  # fmt: skip
    blobs: dict[str, bytes] = {}

    def descriptor(media_type: str, data: bytes) -> dict[str, object]:
        digest = hashlib.sha256(data).hexdigest()
        blobs[f"blobs/sha256/{digest}"] = data
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}

    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor("application/vnd.oci.image.config.v1+json", config),
        "layers": [descriptor("application/vnd.oci.image.layer.v1.tar+gzip", layer)],
    }).encode()  # fmt: skip
    entry = descriptor("application/vnd.oci.image.manifest.v1+json", manifest)
    index = {"schemaVersion": 2, "manifests": [{**entry, "annotations": {"io.containerd.image.name": name}}]}
    return _tar({
        "oci-layout": b'{"imageLayoutVersion": "1.0.0"}', "index.json": json.dumps(index).encode(), **blobs,
    })  # fmt: skip


def give_image(lab: Lab, node: str, name: str) -> None:
    """Put a SIMULATED image named `name` into the node's containerd, where Kubernetes' are."""
    lab.ssh(node, "cat > /tmp/ecohash-simulated-image.tar", input_bytes=simulated_image_archive(name))
    lab.ssh(node, "ctr --namespace k8s.io images import --no-unpack /tmp/ecohash-simulated-image.tar"
                  " && rm /tmp/ecohash-simulated-image.tar")
    assert name in lab.ssh(node, "ctr --namespace k8s.io images list --quiet").stdout.split()
