"""Downloading one upstream file into the bundle's work directory, checked against its pin.

Every collector fetches through here, so a pinned sha256 is checked in one place and a
file that does not match never lands where a collector would hand it on: it is written
beside its final name and renamed only once its hash is right.
"""

from __future__ import annotations

import hashlib
import shutil
import urllib.request
from pathlib import Path

from ecohash.errors import EcohashError

DOWNLOAD_TIMEOUT_S = 60
BLOCK = 1 << 20


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(url: str, target: Path, sha256: str, *, what: str, proxy: str | None = None) -> Path:
    """`target` holding the bytes at `url` whose sha256 is `sha256`; reused when already there."""
    if target.is_file() and sha256_of(target) == sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    handlers = [urllib.request.ProxyHandler({"http": proxy} if proxy else {})]
    try:
        with urllib.request.build_opener(*handlers).open(url, timeout=DOWNLOAD_TIMEOUT_S) as response, \
                open(partial, "wb") as out:
            shutil.copyfileobj(response, out, BLOCK)
    except (OSError, ValueError) as error:
        partial.unlink(missing_ok=True)
        reason = getattr(error, "reason", None) or error
        raise EcohashError(f"cannot download {what} from {url}: {reason}") from None
    try:
        check_sha256(partial, sha256, what=f"{what} from {url}")
    except EcohashError:
        partial.unlink()
        raise
    partial.rename(target)
    return target


def check_sha256(path: Path, sha256: str, *, what: str) -> None:
    """Refuse a file whose bytes are not the pinned ones."""
    actual = sha256_of(path)
    if actual != sha256:
        raise EcohashError(f"{what} has sha256 {actual}, but {sha256} is pinned: refused")
