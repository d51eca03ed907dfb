"""Model weights by revision, from a local Hugging Face cache or a plain directory.

A Hugging Face cache keeps `models--<org>--<name>/snapshots/<revision>/<path>` as symlinks
to `blobs/<hash>`; large (LFS) files are named by the sha256 of their content, so a blob
whose bytes do not match its name is a damaged cache and is refused. A plain directory
holds `<org>/<name>/<path>` and needs its revision named, since nothing in it records one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ecohash.bundle.fetch import sha256_of
from ecohash.errors import EcohashError

_SHA256_NAME = re.compile(r"^[0-9a-f]{64}$")
# A revision becomes a directory name at the site: a commit id or a plain name, no path.
_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class ModelFile:
    repo_id: str
    revision: str
    path_in_repo: str
    path: Path  # the file's bytes (a cache blob, the symlink resolved)
    sha256: str


def default_cache() -> Path:
    """Where huggingface_hub keeps its cache: $HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface" / "hub"


def model_files(source: Path, repo_id: str, revisions: Mapping[str, str]) -> list[ModelFile]:
    """Every file of `repo_id` at its revision (`revisions`, else the cache's refs/main)."""
    cached = source / f"models--{repo_id.replace('/', '--')}"
    if cached.is_dir():
        revision = revisions.get(repo_id) or _read_ref(cached, "main")
        snapshot = cached / "snapshots" / revision
        if not snapshot.is_dir():
            raise EcohashError(f"{source}: the cache has no snapshot {revision} of {repo_id}")
    elif (source / repo_id).is_dir():
        if repo_id not in revisions:
            raise EcohashError(f"{source / repo_id}: a plain directory records no revision; name it")
        revision, snapshot = revisions[repo_id], source / repo_id
    else:
        raise EcohashError(f"{source}: no {repo_id} (neither a Hugging Face cache's {cached.name}/ "
                           f"nor {repo_id}/)")
    if not _REVISION.match(revision):
        raise EcohashError(f"{repo_id}: revision {revision!r} is neither a commit id nor a plain name")
    files = []
    for path in sorted(snapshot.rglob("*")):
        if path.is_dir():
            continue
        blob = path.resolve()
        if not blob.is_file():
            raise EcohashError(f"{path}: points at {blob}, which is missing (an incomplete download?)")
        sha256 = sha256_of(blob)
        if _SHA256_NAME.match(blob.name) and blob.name != sha256:
            raise EcohashError(f"{blob}: the cache names it by sha256 {blob.name}, "
                               f"its bytes hash to {sha256}: refused")
        files.append(ModelFile(repo_id, revision, path.relative_to(snapshot).as_posix(), blob, sha256))
    if not files:
        raise EcohashError(f"{snapshot}: no files for {repo_id}")
    return files


def _read_ref(cached: Path, ref: str) -> str:
    try:
        return (cached / "refs" / ref).read_text().strip()
    except OSError:
        raise EcohashError(f"{cached}: no refs/{ref}; name the revision to carry") from None
