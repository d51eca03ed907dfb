"""The record of what a running lab made, so `down` removes exactly that.

`up` writes the record *before* creating each thing (a mount, a namespace, a process), so a
lab that failed half way is still fully described and `down` can clean it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ecohash.errors import EcohashError, InvalidInputError
from ecohash.process import TrackedProcess


@dataclass
class HostRecord:
    """One lab host: where its root is, how it is wired, and its PID 1's supervisor."""

    name: str
    index: int
    address: str
    container: str
    sku: str
    netns: str
    veth: str
    directory: str
    process: TrackedProcess | None = None

    @property
    def root(self) -> Path:
        return Path(self.directory) / "root"


@dataclass
class LabRecord:
    """Everything one `ecohash lab up` made on this machine."""

    base: str = ""
    bridge: str | None = None
    created_run_netns_mount: bool = False
    hosts: list[HostRecord] = field(default_factory=list)
    proxy: TrackedProcess | None = None
    mirror: TrackedProcess | None = None
    registry: TrackedProcess | None = None
    containers: int = 0
    offline: bool = False  # the hosts have no apt proxy; everything comes from the bundle
    # What the lab's bundle weighed and what building, verifying and loading it took
    # (mirror.BundleFigures as a dict): for `lab status` and bench/lab_bundle.py.
    bundle: dict[str, Any] | None = None
    # `lab up --executor`: the site's executor, a host on the bridge that is no node.
    executor: HostRecord | None = None

    @property
    def machines(self) -> list[HostRecord]:
        """Every host the lab runs: the nodes, then the executor if there is one."""
        return [*self.hosts, *([self.executor] if self.executor else [])]

    def host(self, name: str) -> HostRecord:
        for host in self.machines:
            if host.name == name:
                return host
        valid = ", ".join(h.name for h in self.machines) or "none (run `ecohash lab up`)"
        raise InvalidInputError(f"no lab host {name!r}; lab hosts: {valid}")


def load(path: Path) -> LabRecord | None:
    """The recorded lab, or None if there is none."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise EcohashError(
            f"{path}: unreadable lab state ({error}); run `ecohash lab down`"
        ) from error
    hosts = [_host(h) for h in raw.pop("hosts", [])]
    executor = raw.pop("executor", None)
    proxy = _process(raw.pop("proxy", None))
    mirror = _process(raw.pop("mirror", None))
    registry = _process(raw.pop("registry", None))
    return LabRecord(**raw, hosts=hosts, proxy=proxy, mirror=mirror, registry=registry,
                     executor=_host(executor) if executor else None)


def save(path: Path, record: LabRecord) -> None:
    """Write the record atomically: a crash mid-write must not lose what was made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(asdict(record), indent=2) + "\n")
    os.replace(temporary, path)


def _host(raw: dict[str, object]) -> HostRecord:
    return HostRecord(**{**raw, "process": _process(raw.get("process"))})  # type: ignore[arg-type]


def _process(raw: dict[str, int] | None) -> TrackedProcess | None:
    return TrackedProcess(**raw) if raw else None
