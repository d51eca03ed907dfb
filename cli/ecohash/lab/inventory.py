"""The lab's site inventory: the running hosts described as a site `ecohash plan lab` can plan.

Nodes are spread over containers, one rack each. Odd containers hold H100 nodes under a
budget tight enough that their GPUs must be capped (below TDP, above the model's minimum);
even containers hold L40S nodes with room to run at TDP. Budgets follow the planner's
rule: min(power_kw, cooling_kw) * 1000 W against host_w + gpus * cap per node.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import yaml

from ecohash.lab.simhardware import GPU_MODELS, GpuModel

SITE_NAME = "lab"


@dataclass(frozen=True)
class LabSku:
    """A site-defined SKU for lab nodes."""

    name: str
    gpu: GpuModel
    gpus: int
    host_w: int

    def draw_w(self, cap_w: float) -> float:
        return self.host_w + self.gpus * cap_w


CAPPED_SKU = LabSku("lab-h100-2", GPU_MODELS["h100-sxm"], gpus=2, host_w=300)
UNCAPPED_SKU = LabSku("lab-l40s-2", GPU_MODELS["l40s"], gpus=2, host_w=200)
# The cap the tight containers' budget works out to: halfway between minimum and TDP.
TARGET_CAP_W = (CAPPED_SKU.gpu.min_limit_w + CAPPED_SKU.gpu.tdp_w) / 2
# Headroom for uncapped containers, so their nodes run at TDP.
UNCAPPED_HEADROOM = 1.1


@dataclass(frozen=True)
class LabProvisioning:
    """How the lab's site is reached and installed: the lab's SSH config, proxy and mirror."""

    ssh_config: Path
    apt_proxy: str | None  # None: an offline lab, whose hosts reach nothing but the bridge
    mirror_url: str
    mirror_keyring_sha256: str
    registry_url: str
    standard_file: Path
    mirror_only: bool = False
    # The executor's address (`lab up --executor`): provision and drift run the waves there.
    executor: str | None = None

    def document(self) -> dict[str, object]:
        return {
            "ssh": {"user": "root", "config_file": str(self.ssh_config)},
            **({"apt_proxy": self.apt_proxy} if self.apt_proxy else {}),
            "mirror": {
                "url": self.mirror_url, "keyring_sha256": self.mirror_keyring_sha256,
                **({"only": True} if self.mirror_only else {}),
            },
            "registry": self.registry_url,
            "standard": str(self.standard_file),
            # Batches of three: a four-host lab's bootstrap is the Kubernetes server's play,
            # then its three agents in one batch (a batch of one more would be a whole pass
            # of every task again, for nothing the tests look at), and provision still goes
            # in a canary wave, then the rest. One dead host in a batch (up to 50%) does
            # not stop the others.
            "rollout": {"serial": 3, "max_fail_percentage": 50},
            # The user, port and ansible-runner's path are the defaults: the nodes' user and
            # port, and the path the executor role installs to.
            **({"executor": {"host": self.executor}} if self.executor else {}),
        }


@dataclass(frozen=True)
class LabNode:
    name: str
    container: str
    rack: str
    sku: LabSku
    address: str


def layout_nodes(nodes: int, containers: int, addresses: list[str]) -> list[LabNode]:
    """Spread `nodes` over `containers` as evenly as possible, in container order."""
    per_container = [
        nodes // containers + (1 if c < nodes % containers else 0) for c in range(containers)
    ]
    placed: list[LabNode] = []
    for container_index, count in enumerate(per_container):
        container = f"c{container_index + 1:02d}"
        sku = CAPPED_SKU if container_index % 2 == 0 else UNCAPPED_SKU
        for node_index in range(count):
            placed.append(
                LabNode(
                    name=f"{container}-r01-n{node_index + 1:02d}",
                    container=container,
                    rack="r01",
                    sku=sku,
                    address=addresses[len(placed)],
                )
            )
    return placed


def container_budget_kw(members: list[LabNode]) -> float:
    """The container's budget: tight (caps needed) for capped SKUs, roomy otherwise."""
    sku = members[0].sku
    if sku is CAPPED_SKU:
        watts = sum(n.sku.draw_w(TARGET_CAP_W) for n in members)
    else:
        watts = sum(n.sku.draw_w(n.sku.gpu.tdp_w) for n in members) * UNCAPPED_HEADROOM
    # Round down to 0.1 kW so the budget stays tight; the cap then lands just under the target.
    return math.floor(watts / 100) / 10


def site_document(
    nodes: list[LabNode], subnet: str, provisioning: LabProvisioning | None = None
) -> dict[str, object]:
    containers = []
    total_kw = 0.0
    for container in sorted({n.container for n in nodes}):
        members = [n for n in nodes if n.container == container]
        budget_kw = container_budget_kw(members)
        total_kw += budget_kw
        containers.append(
            {
                "name": container,
                "cooling": "air",
                # Power a little above cooling: the budget is the smaller, here cooling.
                "power_kw": round(budget_kw + 0.2, 1),
                "cooling_kw": budget_kw,
                "racks": [
                    {
                        "name": "r01",
                        "nodes": [
                            {"name": n.name, "sku": n.sku.name, "mgmt_ip": n.address}
                            for n in members
                        ],
                    }
                ],
            }
        )
    skus = {n.sku.name: n.sku for n in nodes}
    grid_mw = max(0.05, math.ceil(total_kw * 1.25) / 1000)
    return {
        "apiVersion": "ecohash.io/v1",
        "kind": "Site",
        "metadata": {"name": SITE_NAME, "region": "lab"},
        "spec": {
            "power": {"grid_mw": grid_mw, "reserve_pct": 0, "pue": 1.0},
            "network": {"mgmt_cidr": subnet},
            "skus": {
                name: {"gpu": sku.gpu.inventory_name, "gpus": sku.gpus, "host_w": sku.host_w}
                for name, sku in sorted(skus.items())
            },
            "kubernetes": {"distribution": "k3s", "servers": [nodes[0].name]},
            "containers": containers,
            **({"provisioning": provisioning.document()} if provisioning else {}),
            "services": lab_services({n.sku for n in nodes}),
        },
    }


def lab_services(skus: set[LabSku]) -> list[dict[str, object]]:
    """Small models, one service per GPU model present, so `ecohash render lab` declares
    inference services like a real site's (nothing runs them: lab hosts have no GPU)."""
    services: list[dict[str, object]] = []
    if CAPPED_SKU in skus:
        services.append({"name": "qwen-1-5b", "model": "Qwen/Qwen2.5-1.5B-Instruct",
                         "gpu_model": CAPPED_SKU.gpu.inventory_name, "gpus_per_replica": 2,
                         "replicas": {"min": 1, "max": 2}})
    if UNCAPPED_SKU in skus:
        services.append({"name": "qwen-0-5b", "model": "Qwen/Qwen2.5-0.5B-Instruct",
                         "gpu_model": UNCAPPED_SKU.gpu.inventory_name, "gpus_per_replica": 1,
                         "replicas": {"min": 1, "max": 4}})
    return services


HEADER = """\
# Generated by `ecohash lab up`: the site of lab hosts running on this machine.
# Rewritten on every `ecohash lab up` and removed by `ecohash lab down`; do not edit.
"""


def write(path: Path, nodes: list[LabNode], subnet: str, provisioning: LabProvisioning) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = yaml.safe_dump(
        site_document(nodes, subnet, provisioning), sort_keys=False, default_flow_style=False
    )
    path.write_text(HEADER + body)
