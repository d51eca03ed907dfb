"""For load tests: a bundle's blobs and entries written by hand, a tiny image, Debian's
docker-registry on a loopback port."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import socket
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ecohash import process
from ecohash.bundle import siteregistry

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@dataclass(frozen=True)
class StandInEntry:
    """A manifest entry as bundle-core's manifest has it: what publish reads."""

    sha256: str
    size: int
    kind: str
    destination: str
    media_type: str | None = None


class HandBundle:
    """A bundle directory's blobs and entries, written by the test (no signature)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.entries: list[StandInEntry] = []
        (directory / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)

    def add(self, kind: str, destination: str, data: bytes, media_type: str | None = None) -> str:
        digest = hashlib.sha256(data).hexdigest()
        (self.directory / "blobs" / "sha256" / digest).write_bytes(data)
        self.entries.append(StandInEntry(digest, len(data), kind, destination, media_type))
        return digest

    def manifest_bytes(self) -> bytes:
        listed = sorted(self.entries, key=lambda e: (e.kind, e.destination))
        return (json.dumps({"entries": [e.__dict__ for e in listed]}, indent=1, sort_keys=True)
                + "\n").encode()

    def add_deb(self, name: str, version: str) -> None:
        """A tiny package, built once per test: two bundles of a test share its very bytes."""
        deb = self.directory.parent / f"{name}_{version}_all.deb"
        if not deb.exists():
            _build_deb(deb, name, version)
        self.add("deb", f"apt/{deb.name}", deb.read_bytes())

    def add_image(self, repository: str, tag: str | None, note: bytes) -> str:
        """A one-layer OCI image; returns its manifest's digest (sha256:...)."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            info = tarfile.TarInfo("NOTE")
            info.size = len(note)
            archive.addfile(info, io.BytesIO(note))
        layer = gzip.compress(buffer.getvalue(), mtime=0)
        config = json.dumps({"architecture": "amd64", "os": "linux", "config": {}, "rootfs": {
            "type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(buffer.getvalue()).hexdigest()}"]}}
        ).encode()
        blobs = f"registry/{repository}/blobs"
        config_digest = self.add("image-config", blobs, config, "application/vnd.oci.image.config.v1+json")
        layer_digest = self.add("image-layer", blobs, layer, "application/vnd.oci.image.layer.v1.tar+gzip")
        # Written with unusual spacing on purpose: a re-serialised manifest would change digest.
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": f"sha256:{config_digest}", "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": f"sha256:{layer_digest}", "size": len(layer)}],
        }, indent=3).encode()  # fmt: skip
        digest = hashlib.sha256(manifest).hexdigest()
        self.add("image-manifest", f"registry/{repository}@sha256:{digest}", manifest, OCI_MANIFEST)
        if tag:
            self.add("image-tag", f"registry/{repository}:{tag}", manifest)
        return f"sha256:{digest}"


def _build_deb(deb: Path, name: str, version: str) -> None:
    root = deb.with_suffix(".root")
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: ecohash tests <tests@ecohash.invalid>\nDescription: a test package\n"
    )
    process.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", root, deb])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    """Debian's docker-registry on a loopback port, with ecohash's config; its URL."""
    url = f"http://127.0.0.1:{free_port()}"
    daemon = siteregistry.start(url, tmp_path / "registry", tmp_path / "registry.log")
    try:
        yield url
    finally:
        process.stop_all([daemon])


def gpgv(keyring: Path, signed: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["gpgv", "--keyring", str(keyring), str(signed)],
                          capture_output=True, text=True, check=False)
