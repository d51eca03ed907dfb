"""Pushing a bundle's images into the site registry over the registry v2 API, byte for byte.

Blobs go up by digest (HEAD first: a blob the registry holds is never sent again), then
image manifests, then indexes (a registry checks that what an index names is there), then
tags; every manifest is PUT with its exact bytes and media type, so its digest survives
the trip. Plain http.client: the largest blobs (a 12 GB image) stream from the file.
"""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ecohash.errors import EcohashError

# What HEAD on a manifest accepts: every manifest type a bundle may carry.
MANIFEST_MEDIA_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
TIMEOUT_S = 120


def site_repository(repository: str, registry_path: str) -> str:
    """The name an image has in the site registry: its upstream host dropped (as the pull's
    reference and containerd's mirror for that host drop it) and the registry's path put
    first, e.g. docker.io/vllm/vllm-openai under /mirror is mirror/vllm/vllm-openai."""
    first, _, rest = repository.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        repository = rest
    return f"{registry_path}/{repository}" if registry_path else repository


@dataclass(frozen=True)
class PushCount:
    blobs_sent: int = 0
    manifests_put: int = 0
    tags_put: int = 0

    def __add__(self, other: PushCount) -> PushCount:
        return PushCount(
            self.blobs_sent + other.blobs_sent,
            self.manifests_put + other.manifests_put,
            self.tags_put + other.tags_put,
        )


class RegistryClient:
    """The few registry v2 calls a push needs, against one registry URL
    ([http://|https://]host[:port][/path], as the site file writes it)."""

    def __init__(self, url: str) -> None:
        scheme = "http" if url.startswith("http://") else "https"
        address = url.split("://", 1)[1] if "://" in url else url
        self.url = url
        self.scheme = scheme
        self.host, _, path = address.partition("/")
        self.path = path.strip("/")

    def repository(self, upstream: str) -> str:
        return site_repository(upstream, self.path)

    def _connection(self, host: str, scheme: str) -> http.client.HTTPConnection:
        if scheme == "https":
            return http.client.HTTPSConnection(
                host, timeout=TIMEOUT_S, context=ssl.create_default_context()
            )
        return http.client.HTTPConnection(host, timeout=TIMEOUT_S)

    def _request(
        self,
        method: str,
        target: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes | object | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """One request; `target` is a path on the registry or an absolute URL it gave us."""
        parsed = urllib.parse.urlsplit(target)
        host = parsed.netloc or self.host
        scheme = parsed.scheme or self.scheme
        path = urllib.parse.urlunsplit(("", "", parsed.path, parsed.query, ""))
        connection = self._connection(host, scheme)
        try:
            connection.request(method, path, body=body, headers=headers or {})  # type: ignore[arg-type]
            response = connection.getresponse()
            data = response.read()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, data
        except (OSError, http.client.HTTPException) as error:
            raise EcohashError(
                f"the site registry {self.url} did not answer {method} {path}: {error}"
            ) from None
        finally:
            connection.close()

    def _fail(self, what: str, status: int, data: bytes) -> EcohashError:
        detail = data.decode(errors="replace").strip()[:300]
        return EcohashError(f"the site registry {self.url} refused {what}: HTTP {status} {detail}")

    def has_blob(self, repository: str, digest: str) -> bool:
        status, _, data = self._request("HEAD", f"/v2/{repository}/blobs/{digest}")
        if status in (200, 404):
            return status == 200
        raise self._fail(f"HEAD of blob {digest} in {repository}", status, data)

    def push_blob(self, repository: str, digest: str, path: Path) -> None:
        """A monolithic upload: POST for an upload URL, then PUT the bytes with their digest."""
        status, headers, data = self._request("POST", f"/v2/{repository}/blobs/uploads/")
        if status != 202 or "location" not in headers:
            raise self._fail(f"an upload to {repository}", status, data)
        location = urllib.parse.urljoin(f"{self.scheme}://{self.host}/", headers["location"])
        separator = "&" if "?" in location else "?"
        size = path.stat().st_size
        with open(path, "rb") as blob:
            status, _, data = self._request(
                "PUT",
                f"{location}{separator}digest={urllib.parse.quote(digest)}",
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
                body=blob,
            )
        if status != 201:
            raise self._fail(f"blob {digest} for {repository}", status, data)

    def manifest_digest(self, repository: str, reference: str) -> str | None:
        """The digest the registry has under `reference` (a digest or a tag), or None."""
        status, headers, data = self._request(
            "HEAD",
            f"/v2/{repository}/manifests/{reference}",
            headers={"Accept": ", ".join(MANIFEST_MEDIA_TYPES)},
        )
        if status == 404:
            return None
        if status != 200:
            raise self._fail(f"HEAD of manifest {reference} in {repository}", status, data)
        return headers.get("docker-content-digest")

    def put_manifest(self, repository: str, reference: str, data: bytes, media_type: str) -> None:
        status, _, answer = self._request(
            "PUT",
            f"/v2/{repository}/manifests/{reference}",
            headers={"Content-Type": media_type, "Content-Length": str(len(data))},
            body=data,
        )
        if status != 201:
            raise self._fail(f"manifest {reference} for {repository}", status, answer)


@dataclass(frozen=True)
class ImageBlob:
    """One registry entry of a bundle: kind, upstream repository, sha256, media type."""

    kind: str
    repository: str
    sha256: str
    media_type: str | None
    tag: str | None = None


def push_images(client: RegistryClient, images: list[ImageBlob], store: Path) -> PushCount:
    """Push every image blob, manifest and tag that the registry lacks; the bytes come from
    the site's blob store (`store/<hex>`)."""
    count = PushCount()
    order = ("image-config", "image-layer", "image-manifest", "image-index", "image-tag")
    media_types = {(i.repository, i.sha256): i.media_type for i in images if i.kind != "image-tag"}
    for kind in order:
        for image in _unique(i for i in images if i.kind == kind):
            repository = client.repository(image.repository)
            digest = f"sha256:{image.sha256}"
            if kind in ("image-config", "image-layer"):
                if not client.has_blob(repository, digest):
                    client.push_blob(repository, digest, store / image.sha256)
                    count += PushCount(blobs_sent=1)
                continue
            reference = image.tag if kind == "image-tag" else digest
            if client.manifest_digest(repository, str(reference)) == digest:
                continue
            media_type = media_types.get((image.repository, image.sha256)) or _media_type_of(
                store / image.sha256
            )
            client.put_manifest(
                repository, str(reference), (store / image.sha256).read_bytes(), media_type
            )
            count += PushCount(tags_put=1) if kind == "image-tag" else PushCount(manifests_put=1)
    return count


def _unique(images: Iterator[ImageBlob]) -> list[ImageBlob]:
    seen: dict[tuple[str, str, str | None], ImageBlob] = {}
    for image in images:
        seen.setdefault((image.repository, image.sha256, image.tag), image)
    return list(seen.values())


def _media_type_of(path: Path) -> str:
    """A tag's manifest carries its own mediaType (OCI and Docker schema 2 both write it)."""
    try:
        media_type = json.loads(path.read_bytes()).get("mediaType")
    except (ValueError, AttributeError):
        media_type = None
    if not isinstance(media_type, str):
        raise EcohashError(f"{path}: a tagged manifest without a mediaType; cannot push it")
    return media_type
