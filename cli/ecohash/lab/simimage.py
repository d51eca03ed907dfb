"""The lab's own container image, SIMULATED: one tiny layer, pushed to the lab's site registry.

Lab hosts cannot reach docker.io, and the vLLM image is some 12 GB; the lab's node standard
names this image (by digest) as its inference runtime instead, so inference_runtime's
pre-pull pulls it for real from the lab's registry through container_runtime's hosts.toml.
Built deterministically (no timestamps), so its digest is the same on every `lab up`.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

from ecohash.bundle.items import Item

# Named under docker.io, like the production image: a node's pull drops the upstream host.
IMAGE = "docker.io/ecohash-lab/simulated-inference"
TAG = "simulated"
NOTE = b"A SIMULATED inference image made by `ecohash lab up`; it runs nothing.\n"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


@dataclass(frozen=True)
class LabImage:
    digest: str  # sha256:<hex> of the manifest
    items: list[Item]


def build(directory: Path) -> LabImage:
    """Write the image's config, layer and manifest into `directory`; their bundle Items."""
    directory.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        info = tarfile.TarInfo("SIMULATED")
        info.size, info.mode = len(NOTE), 0o644
        archive.addfile(info, io.BytesIO(NOTE))
    layer_tar = buffer.getvalue()
    layer = gzip.compress(layer_tar, mtime=0)
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "config": {},
         "rootfs": {"type": "layers", "diff_ids": [f"sha256:{_hex(layer_tar)}"]}},
        sort_keys=True,
    ).encode()
    manifest = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
         "config": {"mediaType": OCI_CONFIG, "digest": f"sha256:{_hex(config)}", "size": len(config)},
         "layers": [{"mediaType": OCI_LAYER, "digest": f"sha256:{_hex(layer)}", "size": len(layer)}]},
        sort_keys=True,
    ).encode()
    blobs = f"registry/{IMAGE}/blobs"
    items = [
        _item(directory, "image-config", blobs, config, OCI_CONFIG),
        _item(directory, "image-layer", blobs, layer, OCI_LAYER),
        _item(directory, "image-manifest", f"registry/{IMAGE}@sha256:{_hex(manifest)}", manifest,
              OCI_MANIFEST),
        _item(directory, "image-tag", f"registry/{IMAGE}:{TAG}", manifest, None),
    ]
    return LabImage(digest=f"sha256:{_hex(manifest)}", items=items)


def _hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _item(directory: Path, kind: str, destination: str, data: bytes, media_type: str | None) -> Item:
    path = directory / _hex(data)
    path.write_bytes(data)
    return Item(kind, destination, path, media_type, _hex(data))
