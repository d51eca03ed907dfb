"""GpuContainer: one modular container's namespace, its GPU quota, and its nodes' labels.

A container is a power and cooling domain: its GPUs are bounded by what its budget
feeds, and it can trip as a unit. Its workloads therefore live in a namespace of
its own whose quota is the container's GPU count, so a service can never ask a
container for more GPUs than it has, and one container's outage leaves the others'
replicas serving.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from ecohash.inventory import labels
from ecohash.stack.names import container_namespace, object_labels

GPU_RESOURCE = "nvidia.com/gpu"


def gpu_tolerations() -> list[k8s.core.v1.TolerationArgs]:
    """What lets a pod onto the site's GPU nodes, as a pod spec takes it."""
    # By name, not **labels.GPU_TOLERATION: a dict[str, str] could hold toleration_seconds, an int.
    toleration = labels.GPU_TOLERATION
    return [k8s.core.v1.TolerationArgs(key=toleration["key"], operator=toleration["operator"],
                                       effect=toleration["effect"])]


@dataclass
class GpuContainerArgs:
    site: str
    container: str
    cooling: str
    gpus: int  # every GPU in the container's nodes


class GpuContainer(pulumi.ComponentResource):
    namespace: str
    node_selector: dict[str, str]  # what selects this container's nodes
    tolerations: list[dict[str, str]]  # what lets a pod onto its GPU nodes

    def __init__(self, name: str, args: GpuContainerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ecohash:container:GpuContainer", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.namespace = container_namespace(args.container)
        self.node_selector = {labels.SITE: args.site, labels.CONTAINER: args.container}
        self.tolerations = [labels.GPU_TOLERATION]
        own_labels = object_labels(args.site, "gpu-container", **{
            labels.CONTAINER: args.container, labels.COOLING: args.cooling})
        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=self.namespace, labels=own_labels),
            opts=child,
        )
        k8s.core.v1.ResourceQuota(
            f"{name}-gpus",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="gpus", namespace=self.namespace, labels=own_labels),
            # Extended resources are only quota-able by their requests.
            spec=k8s.core.v1.ResourceQuotaSpecArgs(hard={f"requests.{GPU_RESOURCE}": str(args.gpus)}),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[namespace]),
        )
        self.register_outputs({
            "namespace": self.namespace,
            "node_selector": self.node_selector,
            # Given to each node at registration (ecohash.inventory.labels, k8s_node role).
            "node_taints": [labels.GPU_TAINT],
            "gpus": args.gpus,
        })
