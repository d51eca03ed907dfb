"""A SIMULATED k3s binary for the lab's file store.

The real k3s cannot be fetched here (no route to GitHub) and could not form a cluster
inside a lab host anyway. The stand-in (k3s_sim.py, a python3 script) is served from the
mirror's file store like the real binary, so the k8s_node role downloads it, checks its
sha256 against the (lab's) node standard, installs it, renders its configuration, and
starts its unit through the production tasks: its server keeps the cluster's Node objects
and its agents register with it, so the role's join and label reconciliation run for real
against a simulated API (see k3s_sim.py for what is simulated and what is not).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ecohash.lab import k3s_sim
from ecohash.standard import k3s_mirror_path

VERSION_LINE = f'VERSION = "{k3s_sim.VERSION}"'


def script(version: str) -> str:
    """The stand-in's text, answering `--version` with the release it stands in for."""
    source = Path(k3s_sim.__file__).read_text()
    if VERSION_LINE not in source:
        raise RuntimeError(f"{k3s_sim.__file__} must define {VERSION_LINE} on a line of its own")
    return source.replace(VERSION_LINE, f'VERSION = "{version}"', 1)


def build(files_dir: Path, version: str) -> tuple[Path, str]:
    """Write the stand-in for `version` into the file store; return its path and sha256."""
    target = files_dir / k3s_mirror_path(version)
    target.parent.mkdir(parents=True, exist_ok=True)
    content = script(version).encode()
    target.write_bytes(content)
    target.chmod(0o755)
    return target, hashlib.sha256(content).hexdigest()
