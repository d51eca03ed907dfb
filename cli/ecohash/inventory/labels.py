"""The labels and taints every node carries, from the inventory: one rule for both sides.

Nodes are given these at registration by the k8s_node role (k3s `node-label` and
`node-taint`), which also reconciles them on the live Node after every join (k3s applies
them only at registration), and the stack's workloads select by them. Declaring them from the
stack instead would take one Kubernetes object per node, and a site's object count
must not grow with its nodes (docs/stack.md).
"""

from __future__ import annotations

from ecohash.inventory.site import Container, Node

# Every label under this prefix is ecohash's: one the inventory no longer gives is removed.
LABEL_PREFIX = "ecohash.io/"
SITE = LABEL_PREFIX + "site"
CONTAINER = LABEL_PREFIX + "container"
RACK = LABEL_PREFIX + "rack"
SKU = LABEL_PREFIX + "sku"
COOLING = LABEL_PREFIX + "cooling"
GPU_MODEL = LABEL_PREFIX + "gpu-model"
GPU_COUNT = LABEL_PREFIX + "gpu-count"

# Soft, so that a site whose every node has GPUs (control plane included) still runs
# CoreDNS and the like; they only prefer nodes without GPUs when there are any.
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "PreferNoSchedule"}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "PreferNoSchedule"}
# Taints with these keys are ecohash's: a node that no longer should carry one loses it.
TAINT_KEYS = (GPU_TAINT["key"],)


def node_labels(site_name: str, container: Container, node: Node) -> dict[str, str]:
    """A node's labels; none of them changes unless the node moves or is rebuilt.

    Caps are deliberately absent: they change with the budget, and registration
    labels are only applied when a node joins. They live in the power-budget ConfigMaps.
    The inventory keeps each part on the group it is true for (the site's, the
    container's, the rack's, the SKU's) and the k8s_node role combines them in this order.
    """
    return {**site_labels(site_name), **container_labels(container), **rack_labels(node.rack),
            **sku_labels(node)}


def site_labels(site_name: str) -> dict[str, str]:
    return {SITE: site_name}


def container_labels(container: Container) -> dict[str, str]:
    return {CONTAINER: container.name, COOLING: container.cooling}


def rack_labels(rack: str) -> dict[str, str]:
    return {RACK: rack}


def sku_labels(node: Node) -> dict[str, str]:
    """What every node of the node's SKU shares: its name, and its GPUs' model and count."""
    labels = {SKU: node.sku_name}
    if node.gpu is not None and node.sku.gpu is not None:
        labels[GPU_MODEL] = node.sku.gpu
        labels[GPU_COUNT] = str(node.gpus)
    return labels


def node_taints(node: Node) -> list[dict[str, str]]:
    return [GPU_TAINT] if node.gpus else []


def k3s_taint(taint: dict[str, str]) -> str:
    """A taint as k3s's `node-taint` takes it: key=value:Effect."""
    return f"{taint['key']}={taint['value']}:{taint['effect']}"
