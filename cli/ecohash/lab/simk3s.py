"""A SIMULATED k3s binary for the lab's file store.

The real k3s cannot be fetched here (no route to GitHub) and could not form a cluster
inside a lab host anyway. The stand-in is served from the mirror's file store like the
real binary, so the k8s_node role downloads it, checks its sha256 against the (lab's)
node standard, installs it, renders its configuration and enables its unit through the
production tasks. It answers `--version` and refuses to run a server or agent.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

SCRIPT = """\
#!/bin/sh
# SIMULATED k3s (ecohash lab stand-in for {version}). Not Rancher's k3s: no cluster.
case "$1" in
  --version|-v)
    echo "k3s version {version} (SIMULATED by the ecohash lab)"
    echo "go version none";;
  *)
    echo "k3s: SIMULATED by the ecohash lab; '$1' cannot run in a lab host" >&2
    exit 1;;
esac
"""


def relative_path(version: str) -> str:
    """Where k3s lives under a mirror's files/: one directory per release, like GitHub's."""
    return f"k3s/{version}/k3s"


def build(files_dir: Path, version: str) -> tuple[Path, str]:
    """Write the stand-in for `version` into the file store; return its path and sha256."""
    target = files_dir / relative_path(version)
    target.parent.mkdir(parents=True, exist_ok=True)
    content = SCRIPT.format(version=version).encode()
    target.write_bytes(content)
    target.chmod(0o755)
    return target, hashlib.sha256(content).hexdigest()
