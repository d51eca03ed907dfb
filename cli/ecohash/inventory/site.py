"""The expanded site: every node spelt out, with its SKU and GPU model resolved.

This is what the budget compiler, the Ansible inventory plugin and the stacks read.
It is built only from a valid site file (see loader.py), so nothing here re-checks.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from ecohash.inventory.model import (
    CurtailmentProgram,
    GpuModel,
    InferenceService,
    Kubernetes,
    Power,
    Provisioning,
    SiteFile,
    Sku,
)
from ecohash.inventory.yaml_source import Parsed

YamlPath = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    container: str
    rack: str
    sku_name: str
    sku: Sku
    gpu: GpuModel | None
    mgmt_ip: IPv4Address
    entry_path: YamlPath  # the node entry it came from, for FILE:LINE messages

    @property
    def gpus(self) -> int:
        return self.sku.gpus

    @property
    def host_w(self) -> int:
        return self.sku.host_w


@dataclass(frozen=True, slots=True)
class Rack:
    name: str
    container: str
    power_kw: Decimal | None
    nodes: tuple[Node, ...]
    path: YamlPath

    @property
    def qualified_name(self) -> str:
        return f"{self.container}/{self.name}"


@dataclass(frozen=True, slots=True)
class Container:
    name: str
    cooling: str
    power_kw: Decimal
    cooling_kw: Decimal
    flex: int  # curtailment tier: 3 gives power back first, 0 never below planned caps
    racks: tuple[Rack, ...]
    path: YamlPath

    @property
    def nodes(self) -> Iterator[Node]:
        for rack in self.racks:
            yield from rack.nodes


@dataclass(frozen=True)
class Site:
    name: str
    region: str | None
    file: Path
    power: Power
    mgmt_cidr: IPv4Network
    kubernetes: Kubernetes | None
    gpu_models: dict[str, GpuModel]
    skus: dict[str, Sku]
    containers: tuple[Container, ...]
    document: SiteFile = field(repr=False)
    parsed: Parsed = field(repr=False)

    @property
    def nodes(self) -> list[Node]:
        return [node for container in self.containers for node in container.nodes]

    @property
    def services(self) -> list[InferenceService]:
        return self.document.spec.services

    @property
    def curtailment_programs(self) -> list[CurtailmentProgram]:
        return self.power.curtailment.programs

    @property
    def provisioning(self) -> Provisioning:
        return self.document.spec.provisioning

    @property
    def ssh_config_file(self) -> Path | None:
        """The ssh_config Ansible connects with (`ssh -F`), if the site names one."""
        named = self.provisioning.ssh.config_file
        return self.path_from_file(named) if named else None

    def path_from_file(self, path: str) -> Path:
        """A path the site file names, taken relative to the site file."""
        return (self.file.parent / path).resolve()

    def line_of(self, path: Sequence[str | int]) -> int:
        """The line in the site file where the value at `path` is written."""
        return self.parsed.line_of(path)
