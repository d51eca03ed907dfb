"""The lab mirror's signing key: apt on lab hosts checks the mirror as on a real site.

A site mirror signs its Release file; the site file pins the sha256 of the mirror's
public keyring, and nodes refuse the mirror unless the key they fetch matches it. The
lab does the same with a key of its own, generated once and kept with the base (it
signs nothing but the lab's mirror, and has no passphrase because nobody types one).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ecohash.lab import process

KEY_USER_ID = "ecohash lab site mirror <lab@ecohash.invalid>"


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
    _gpg(home, "--yes", "--output", target, "--export", KEY_USER_ID)
    return hashlib.sha256(target.read_bytes()).hexdigest()


def sign_release(home: Path, repository: Path) -> None:
    """Write InRelease and Release.gpg for the repository's Release file."""
    release = repository / "Release"
    _gpg(home, "--yes", "--clearsign", "--output", repository / "InRelease", release)
    _gpg(home, "--yes", "--armor", "--detach-sign", "--output", repository / "Release.gpg", release)


def stop_agent(home: Path) -> None:
    """gpg leaves an agent running per home; the lab must not leave processes behind."""
    process.run(["gpgconf", "--homedir", home, "--kill", "gpg-agent"])
