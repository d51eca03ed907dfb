"""One thing to put in a bundle, as a collector hands it to the bundle's writer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Every kind of blob a bundle carries, and the root its destinations start with; the
# manifest refuses any other kind, and a destination outside its kind's root.
DESTINATION_ROOTS = {
    "deb": "apt/",  # "apt/<file>.deb"
    "file": "files/",  # "files/<path>": binaries, charts, keys
    "image-manifest": "registry/",  # "registry/<repository>@sha256:<digest>"
    "image-index": "registry/",  # "registry/<repository>@sha256:<digest>"
    "image-config": "registry/",  # "registry/<repository>/blobs"
    "image-layer": "registry/",  # "registry/<repository>/blobs"
    "image-tag": "registry/",  # "registry/<repository>:<tag>", sha256 = the tagged manifest
    "wheel": "wheels/",  # "wheels/<file>.whl"
    "model-file": "models/",  # "models/<repo id>/<revision>/<path in repo>"
}
KINDS = tuple(DESTINATION_ROOTS)


@dataclass(frozen=True)
class Item:
    """One blob for a bundle: where its bytes are here, and where it goes at the site."""

    kind: str  # one of KINDS
    destination: str  # e.g. "apt/<file>.deb", "registry/<repository>@sha256:<digest>"
    path: Path  # a local file holding exactly the blob's bytes
    media_type: str | None = None  # an image manifest's or layer's mediaType, exact
    sha256: str | None = None  # when the collector knows it (a pin): build checks it, fails closed
