"""A signed flat apt repository, as a site mirror serves it: the index and the signature.

A site mirror signs its Release file; the site file pins the sha256 of the mirror's
public keyring, and nodes refuse the mirror unless the key they fetch matches it. The
key is a GnuPG home with one Ed25519 signing key and no passphrase (nobody types one at
a mirror that is refilled by `ecohash bundle load` or `ecohash lab up`).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import time
from pathlib import Path

from ecohash import process

KEY_USER_ID = "ecohash site mirror <mirror@ecohash.invalid>"


def index_repository(repository: Path, label: str) -> None:
    """Write Packages, Packages.gz and a Release file for a flat repository (`deb URL ./`)."""
    # Paths in Packages must be relative to the repository: scan from inside it.
    packages = process.run(
        ["sh", "-c", 'cd "$1" && dpkg-scanpackages --multiversion .', "sh", repository]
    )
    (repository / "Packages").write_text(packages)
    with gzip.open(repository / "Packages.gz", "wt") as compressed:
        compressed.write(packages)
    lines = [
        "Origin: ecohash",
        f"Label: {label}",
        "Suite: ./",
        f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S UTC', time.gmtime())}",
        "SHA256:",
    ]
    for name in ("Packages", "Packages.gz"):
        data = (repository / name).read_bytes()
        lines.append(f" {hashlib.sha256(data).hexdigest()} {len(data)} {name}")
    (repository / "Release").write_text("\n".join(lines) + "\n")


def _gpg(home: Path, *arguments: str | Path) -> str:
    return process.run(
        ["gpg", "--homedir", home, "--batch", "--quiet", "--no-tty", *arguments],
    )


def ensure_key(home: Path) -> None:
    """Generate the signing key in `home` (a GnuPG home) unless it is already there."""
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(home, 0o700)
    if _gpg(home, "--list-secret-keys", "--with-colons").strip():
        return
    _gpg(home, "--passphrase", "", "--quick-generate-key", KEY_USER_ID, "ed25519", "sign", "never")


def export_keyring(home: Path, target: Path) -> str:
    """Write the public key as a binary keyring (what apt's signed-by reads); return its sha256."""
    target.parent.mkdir(parents=True, exist_ok=True)
    _gpg(home, "--yes", "--output", target, "--export")
    return hashlib.sha256(target.read_bytes()).hexdigest()


def sign_release(home: Path, repository: Path) -> None:
    """Write InRelease and Release.gpg for the repository's Release file."""
    release = repository / "Release"
    _gpg(home, "--yes", "--clearsign", "--output", repository / "InRelease", release)
    _gpg(home, "--yes", "--armor", "--detach-sign", "--output", repository / "Release.gpg", release)


def stop_agent(home: Path) -> None:
    """gpg leaves an agent running per home; ecohash must not leave processes behind."""
    process.run(["gpgconf", "--homedir", home, "--kill", "gpg-agent"])
