"""Small signed bundles for tests: a key, a few items with known bytes, and a build of them."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

from ecohash.bundle import keys
from ecohash.bundle import manifest as manifests
from ecohash.bundle.build import build_bundle
from ecohash.bundle.items import Item
from ecohash.bundle.manifest import Manifest
from tests.conftest import REPO

STANDARD = REPO / "node-standard.lock.yml"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_items(directory: Path, contents: dict[str, bytes]) -> list[Item]:
    """One item per destination, its bytes in a file under `directory`, pinned by its sha256."""
    directory.mkdir(parents=True, exist_ok=True)
    items = []
    for index, (destination, data) in enumerate(sorted(contents.items())):
        path = directory / f"source-{index}"
        path.write_bytes(data)
        kind = {"apt": "deb", "files": "file", "wheels": "wheel", "models": "model-file"}[destination.split("/")[0]]
        items.append(Item(kind=kind, destination=destination, path=path, sha256=sha256(data)))
    return items


CONTENTS = {
    "apt/containerd.io_1.7.27-1_amd64.deb": b"a deb\n" * 1000,
    "files/k3s/v1.35.6+k3s1/k3s": b"\x7fELF k3s" * 50_000,
    "files/gpu-operator/v25.3.4/gpu-operator-v25.3.4.tgz": b"chart",
    "wheels/ansible_core-2.19.0-py3-none-any.whl": b"chart",  # the same bytes: one blob, twice listed
}


def build(out: Path, key: keys.SecretKey, items: list[Item], base: Path | None = None,
          site_name: str | None = "lab") -> Manifest:
    return build_bundle(items, out, standard_file=STANDARD, site_name=site_name, key=key, base=base)


def blob(bundle: Path, data: bytes) -> Path:
    return bundle / "blobs" / "sha256" / sha256(data)


def resign(bundle: Path, key: keys.SecretKey, created: str) -> Manifest:
    """The bundle as if built at `created`: its manifest with that date, signed again."""
    manifest = dataclasses.replace(manifests.read(bundle)[0], created=created)
    text = manifest.text()
    (bundle / manifests.MANIFEST_FILE_NAME).write_text(text)
    (bundle / manifests.SIGNATURE_FILE_NAME).write_text(keys.sign(text.encode(), key, f"created:{created}"))
    return manifest
