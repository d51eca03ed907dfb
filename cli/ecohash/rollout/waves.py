"""Cutting a rollout into waves: a canary wave, then the rest in batches.

The canary holds the Kubernetes servers (agents cannot join before them) and one node
of every container that has none there yet, so a broken standard or a container-
specific fault (its cooling, its network, its SKU) shows on one node per container
before it reaches the others. Batches follow the site's rollout.serial, as Ansible
reads it: a count, a percentage of the nodes left after the canary, or a list of
them whose last entry repeats.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class WaveNode:
    name: str
    container: str
    k8s_server: bool = False


@dataclass(frozen=True)
class Wave:
    index: int  # 1-based, in the order run
    name: str
    nodes: tuple[str, ...]


def batch_sizes(serial: int | str | Sequence[int | str], total: int) -> list[int]:
    """Sizes of consecutive batches covering `total` nodes, by Ansible's serial rules."""
    entries: list[int | str] = [serial] if isinstance(serial, int | str) else list(serial)
    sizes: list[int] = []
    covered = 0
    position = 0
    while covered < total:
        entry = entries[min(position, len(entries) - 1)]
        size = min(_batch_size(entry, total), total - covered)
        sizes.append(size)
        covered += size
        position += 1
    return sizes


def _batch_size(entry: int | str, total: int) -> int:
    # Ansible: a percentage of the play's hosts, rounded down, at least one.
    return max(1, int(float(entry.rstrip("%")) * total / 100)) if isinstance(entry, str) else int(entry)


def plan_waves(nodes: Sequence[WaveNode], serial: int | str | Sequence[int | str],
               canary_per_container: int = 1) -> list[Wave]:
    """The waves for `nodes` (in the site's order); no canary when canary_per_container is 0."""
    canary: list[str] = []
    if canary_per_container > 0:
        canary = [node.name for node in nodes if node.k8s_server]
        taken: dict[str, int] = {}
        for node in nodes:
            if node.k8s_server:
                taken[node.container] = taken.get(node.container, 0) + 1
        for node in nodes:
            if not node.k8s_server and taken.get(node.container, 0) < canary_per_container:
                canary.append(node.name)
                taken[node.container] = taken.get(node.container, 0) + 1
    in_canary = set(canary)
    rest = [node.name for node in nodes if node.name not in in_canary]
    waves: list[Wave] = []
    if canary:
        waves.append(Wave(1, "canary", tuple(canary)))
    start = 0
    for size in batch_sizes(serial, len(rest)):
        index = len(waves) + 1
        waves.append(Wave(index, f"wave {index}", tuple(rest[start:start + size])))
        start += size
    return waves
