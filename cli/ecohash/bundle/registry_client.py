"""The pull side of the OCI distribution (registry v2) API: manifests and blobs by digest.

Enough to collect an image from an upstream registry with its manifests' bytes unchanged
(GET of manifests and blobs). Anonymous bearer tokens (Docker Hub's) are fetched when a
registry asks for one. Pushing into a site registry is bundle/registrypush.py's.
"""

from __future__ import annotations

import json
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecohash.bundle import oci
from ecohash.errors import EcohashError

TIMEOUT_S = 60
ACCEPT = ", ".join(oci.INDEX_TYPES + oci.MANIFEST_TYPES)
_CHALLENGE_FIELD = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class ImageName:
    """docker.io/vllm/vllm-openai as the registry API names it: where, and which repository."""

    registry: str  # base URL, e.g. https://registry-1.docker.io
    repository: str  # e.g. vllm/vllm-openai

    @classmethod
    def parse(cls, image: str, *, scheme: str = "https") -> ImageName:
        found = re.match(r"^(https?)://", image)
        first, _, rest = image.removeprefix(found[0] if found else "").partition("/")
        if not rest or ("." not in first and ":" not in first and first != "localhost"):
            first, rest = "docker.io", image
        if first == "docker.io":
            first = "registry-1.docker.io"
            rest = rest if "/" in rest else f"library/{rest}"
        return cls(registry=f"{found[1] if found else scheme}://{first}", repository=rest)


@dataclass
class RegistryClient:
    base_url: str  # http(s)://host[:port]
    _tokens: dict[str, str] = field(default_factory=dict)

    def fetcher(self, repository: str) -> oci.Fetcher:
        """Parts of images in `repository`, for oci.walk."""

        def fetch_part(digest: str, media_type: str | None, target: Path, is_document: bool) -> str | None:
            kind = "manifests" if is_document else "blobs"
            headers = {"Accept": ACCEPT} if is_document else {}
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_file():
                return media_type
            partial = target.with_name(target.name + ".partial")
            path = f"/v2/{repository}/{kind}/{digest}"
            with self._open("GET", path, repository, headers=headers) as response, open(partial, "wb") as out:
                shutil.copyfileobj(response, out, 1 << 20)
                served: str | None = response.headers.get("Content-Type")
            partial.rename(target)
            return served

        return fetch_part

    def _open(self, method: str, path: str, repository: str, *,
              headers: dict[str, str] | None = None) -> Any:
        url = self.base_url + path
        scope = f"repository:{repository}:pull"
        for attempt in (1, 2):
            request = urllib.request.Request(url, method=method, headers={**(headers or {})})
            if scope in self._tokens:
                request.add_header("Authorization", f"Bearer {self._tokens[scope]}")
            try:
                return urllib.request.urlopen(request, timeout=TIMEOUT_S)
            except urllib.error.HTTPError as error:
                challenge = error.headers.get("WWW-Authenticate", "")
                if error.code == 401 and attempt == 1 and challenge.startswith("Bearer "):
                    self._tokens[scope] = self._token(challenge, scope)
                    continue
                if error.code == 404:
                    raise _NotFound(f"registry {self.base_url} has no {path}") from None
                raise EcohashError(f"registry {self.base_url}: {method} {path} answered {error.code} "
                                   f"{error.reason}") from None
            except (OSError, ValueError) as error:
                raise EcohashError(f"cannot reach registry {self.base_url} ({method} {path}): "
                                   f"{getattr(error, 'reason', None) or error}") from None
        raise AssertionError("unreachable")

    def _token(self, challenge: str, scope: str) -> str:
        fields = dict(_CHALLENGE_FIELD.findall(challenge))
        query = urllib.parse.urlencode({"service": fields.get("service", ""), "scope": scope})
        try:
            with urllib.request.urlopen(f"{fields['realm']}?{query}", timeout=TIMEOUT_S) as response:
                answer = json.load(response)
        except (OSError, ValueError, KeyError) as error:
            raise EcohashError(f"registry {self.base_url}: cannot get an anonymous token: {error}") from None
        return str(answer.get("token") or answer.get("access_token") or "")


class _NotFound(EcohashError):
    """The registry has no such manifest or blob (HTTP 404)."""
