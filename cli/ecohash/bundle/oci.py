"""Container images as content: manifests, indexes and blobs by digest, with their exact bytes.

An image is collected from wherever it is (a registry through registry_client, or a local
OCI image layout, as the lab builds its small image) by walking from the pinned digest:
an index to its manifests, a manifest to its config and layers. Every document and blob
is checked against the digest that named it, and a manifest's bytes are kept exactly as
they came, so the digest the node standard pins survives the trip to the site registry.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import tarfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ecohash.bundle.fetch import sha256_of
from ecohash.errors import EcohashError

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
REF_NAME = "org.opencontainers.image.ref.name"


@dataclass(frozen=True)
class ImagePart:
    """One document or blob of an image: its bytes in `path`, verified against `digest`."""

    kind: str  # image-index, image-manifest, image-config or image-layer
    digest: str  # sha256:<hex>
    media_type: str
    path: Path


# (digest, media type if known, target, is a manifest or index) -> the media type the source
# gave; writes exactly the bytes it holds for the digest into target.
Fetcher = Callable[[str, str | None, Path, bool], str | None]


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def walk(digest: str, fetch_part: Fetcher, store: Path, *, what: str) -> list[ImagePart]:
    """Every part of the image (or index) at `digest`: documents first, then blobs."""
    parts: list[ImagePart] = []
    seen: set[str] = set()

    def document(digest_: str, media_type: str | None) -> None:
        path = _stored(store, digest_)
        served_type = fetch_part(digest_, media_type, path, True)
        _verify(path, digest_, what)
        data = path.read_bytes()
        kind_type = json.loads(data).get("mediaType") or served_type or media_type
        if kind_type in INDEX_TYPES:
            parts.append(ImagePart("image-index", digest_, kind_type, path))
            for child in json.loads(data).get("manifests", []):
                if child["digest"] not in seen:
                    seen.add(child["digest"])
                    document(child["digest"], child.get("mediaType"))
        elif kind_type in MANIFEST_TYPES:
            manifest = json.loads(data)
            parts.append(ImagePart("image-manifest", digest_, kind_type, path))
            config = manifest["config"]
            for kind, descriptor in [("image-config", config)] + [("image-layer", layer)
                                                                   for layer in manifest.get("layers", [])]:
                if descriptor["digest"] in seen:
                    continue
                seen.add(descriptor["digest"])
                blob = _stored(store, descriptor["digest"])
                fetch_part(descriptor["digest"], descriptor.get("mediaType"), blob, False)
                _verify(blob, descriptor["digest"], what)
                parts.append(ImagePart(kind, descriptor["digest"], descriptor["mediaType"], blob))
        else:
            raise EcohashError(f"{what}: {digest_} is a {kind_type}, neither an image index nor a manifest")

    seen.add(digest)
    document(digest, None)
    return parts


def _stored(store: Path, digest: str) -> Path:
    algorithm, _, hex_ = digest.partition(":")
    if algorithm != "sha256" or len(hex_) != 64 or not all(c in "0123456789abcdef" for c in hex_):
        raise EcohashError(f"{digest}: only sha256 digests are supported")
    return store / "sha256" / hex_


def _verify(path: Path, digest: str, what: str) -> None:
    if "sha256:" + sha256_of(path) != digest:
        path.unlink()
        raise EcohashError(f"{what}: the content served for {digest} does not match its digest: refused")


# ---- local OCI image layouts ----

def layout_fetcher(layout: Path) -> Fetcher:
    """Parts from an OCI image layout's blobs/sha256/ (the lab's image, an operator's export)."""

    def fetch_part(digest: str, media_type: str | None, target: Path, is_document: bool) -> str | None:
        source = _stored(layout / "blobs", digest)
        if not source.is_file():
            raise EcohashError(f"{layout}: the OCI image layout has no blob {digest}")
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".partial")
            shutil.copyfile(source, partial)
            partial.rename(target)
        return media_type

    return fetch_part


def layout_digests(layout: Path) -> dict[str, str]:
    """The layout's top-level manifests by digest: {digest: media type}."""
    try:
        index = json.loads((layout / "index.json").read_bytes())
    except (OSError, ValueError) as error:
        raise EcohashError(f"{layout}: not an OCI image layout (index.json: {error})") from None
    return {entry["digest"]: entry.get("mediaType", "") for entry in index.get("manifests", [])}


def write_layout(layout: Path, files: Mapping[str, tuple[bytes, int]], *, ref: str,
                 entrypoint: list[str] | None = None) -> str:
    """Build a one-layer linux/amd64 OCI image from {path: (content, mode)}; return its digest.

    Deterministic: the same files give the same digest (fixed mtimes, owners and gzip header),
    so the lab's image is the same on every `lab up` and its digest can be pinned.
    """
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def put(data: bytes) -> str:
        digest = digest_of(data)
        (blobs / digest.split(":", 1)[1]).write_bytes(data)
        return digest

    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.PAX_FORMAT) as archive:
        directories = sorted({str(Path(name.lstrip("/")).parent) for name in files} - {"."})
        for directory in _with_parents(directories):
            info = tarfile.TarInfo(directory)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            archive.addfile(info)
        for name, (content, mode) in sorted(files.items()):
            info = tarfile.TarInfo(name.lstrip("/"))
            info.size, info.mode, info.mtime = len(content), mode, 0
            archive.addfile(info, io.BytesIO(content))
    diff_id = digest_of(tar_bytes.getvalue())
    layer = gzip.compress(tar_bytes.getvalue(), mtime=0)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": entrypoint} if entrypoint else {},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": put(config_bytes), "size": len(config_bytes)},
        "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": put(layer), "size": len(layer)}],
    }
    manifest_bytes = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    manifest_digest = put(manifest_bytes)
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": len(manifest_bytes),
                       "annotations": {REF_NAME: ref}}],
    }
    (layout / "index.json").write_text(json.dumps(index, sort_keys=True, indent=1) + "\n")
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}\n')
    return manifest_digest


def _with_parents(directories: list[str]) -> list[str]:
    every: set[str] = set()
    for directory in directories:
        path = Path(directory)
        every.update(str(parent) for parent in [path, *path.parents] if str(parent) != ".")
    return sorted(every)
