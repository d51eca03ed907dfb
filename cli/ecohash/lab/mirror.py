"""The site mirror: a flat apt repository and a file store, served over HTTP on the bridge.

Real air-gapped sites install from a mirror like this one; the lab builds its content (the
simulated driver) and serves it with Python's http.server, bound to the bridge address so
only the lab's hosts and this machine can reach it.
"""

from __future__ import annotations

import gzip
import hashlib
import sys
import time
from pathlib import Path

from ecohash.lab import process, simdriver
from ecohash.lab.layout import BRIDGE_ADDRESS, MIRROR_PORT
from ecohash.lab.process import TrackedProcess


def mirror_url() -> str:
    return f"http://{BRIDGE_ADDRESS}:{MIRROR_PORT}"


def populate(mirror_dir: Path) -> None:
    """Build the lab's packages into apt/ and index them; files/ is the file store."""
    repository = mirror_dir / "apt"
    simdriver.build(repository)
    files = mirror_dir / "files"
    files.mkdir(parents=True, exist_ok=True)
    (files / "README").write_text(
        "The ecohash lab's file store: artifacts a site fetches by URL (installers, images),\n"
        f"served from {mirror_url()}/files/ like a real site mirror's.\n"
    )
    index_repository(repository)


def index_repository(repository: Path) -> None:
    """Write Packages, Packages.gz and a Release file for a flat repository (`deb URL ./`)."""
    # Paths in Packages must be relative to the repository: scan from inside it.
    packages = process.run(
        ["sh", "-c", 'cd "$1" && dpkg-scanpackages --multiversion .', "sh", repository]
    )
    (repository / "Packages").write_text(packages)
    with gzip.open(repository / "Packages.gz", "wt") as compressed:
        compressed.write(packages)
    lines = [
        "Origin: ecohash-lab",
        "Label: ecohash lab site mirror",
        "Suite: ./",
        f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S UTC', time.gmtime())}",
        "SHA256:",
    ]
    for name in ("Packages", "Packages.gz"):
        data = (repository / name).read_bytes()
        lines.append(f" {hashlib.sha256(data).hexdigest()} {len(data)} {name}")
    (repository / "Release").write_text("\n".join(lines) + "\n")


def start(mirror_dir: Path, log_file: Path) -> TrackedProcess:
    return process.start_daemon(
        [
            sys.executable,
            "-m",
            "http.server",
            "--bind",
            str(BRIDGE_ADDRESS),
            "--directory",
            str(mirror_dir),
            str(MIRROR_PORT),
        ],
        log_file,
    )
