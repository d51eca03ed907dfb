"""A control group per lab host, so hosts never share one and `down` can remove them.

With --keep-unit, systemd-nspawn splits the cgroup it was started in into "payload" (the
host) and "supervisor" (nspawn itself). Started straight from a shell, every host would
split the same cgroup, see the others' processes, and leave those groups behind; so each
host is started inside its own group under an `ecolab` group, removed at `down`.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from ecohash.lab.layout import NAME_PREFIX

CGROUP_ROOT = Path("/sys/fs/cgroup")


def hierarchies() -> list[Path]:
    """The cgroup hierarchies systemd uses: v1's name=systemd and v2 (hybrid), or v2 alone."""
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        return [CGROUP_ROOT]
    return [CGROUP_ROOT / name for name in ("systemd", "unified") if (CGROUP_ROOT / name).is_dir()]


def host_groups(host: str) -> list[Path]:
    return [hierarchy / NAME_PREFIX / host for hierarchy in hierarchies()]


def create(host: str) -> list[Path]:
    groups = host_groups(host)
    for group in groups:
        group.mkdir(parents=True, exist_ok=True)
    return groups


def enter_command(groups: list[Path]) -> str:
    """Shell that moves the calling shell into the host's groups before it execs nspawn."""
    return " && ".join(f"echo $$ > {group / 'cgroup.procs'}" for group in groups) or "true"


def process_ids(host: str | None = None) -> list[int]:
    """Every process in the lab's groups (or one host's): what outlives a killed nspawn.

    A host's systemd survives SIGKILL of its nspawn (it is reparented, not killed), and
    its root is its own mount namespace's "/", so its cgroup is the one sure way to find it.
    """
    found: set[int] = set()
    for hierarchy in hierarchies():
        top = hierarchy / NAME_PREFIX / host if host else hierarchy / NAME_PREFIX
        if not top.is_dir():
            continue
        for procs in top.rglob("cgroup.procs"):
            with contextlib.suppress(OSError):
                found.update(int(pid) for pid in procs.read_text().split())
    return sorted(found)


def remove_all() -> None:
    """Remove every lab group, deepest first; a group still holding processes stays."""
    for hierarchy in hierarchies():
        top = hierarchy / NAME_PREFIX
        if not top.is_dir():
            continue
        groups = sorted(
            (p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
        )
        for group in [*groups, top]:
            with contextlib.suppress(OSError):
                group.rmdir()


def leftover_groups() -> list[Path]:
    return [h / NAME_PREFIX for h in hierarchies() if (h / NAME_PREFIX).exists()]
