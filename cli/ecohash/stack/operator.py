"""GpuOperator: NVIDIA's GPU operator at the standard's chart version, beside Ansible.

The roles own the node: the pinned driver, the pinned container toolkit, and
containerd's configuration with NVIDIA's runtime as default. The operator is
therefore installed with its driver and toolkit turned off, and runs only what
the cluster needs on top: the device plugin (nvidia.com/gpu), GPU feature
discovery, DCGM and its exporter, and the validator.

It is installed through the Helm controller built into k3s and RKE2 (a HelmChart
object) rather than by Pulumi's Helm support, for three reasons:
- ordering: the HelmChart kind exists from a cluster's first boot, Helm installs
  the chart's own CRDs (crds/) before its templates, and `operator.upgradeCRD`
  applies new CRDs on upgrades, where Helm alone never would; nothing in this
  stack creates one of the operator's custom resources, so nothing can race them;
- review: the whole installation is one object whose values are plain YAML, so a
  change reads as a line diff, not an opaque release;
- offline: previews and renders never fetch the chart; the cluster does, from
  the upstream repository or the site mirror.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from ecohash.stack.names import HELM_NAMESPACE, OPERATOR_NAMESPACE, object_labels
from ecohash.standard import GpuOperator as PinnedChart
from ecohash.standard import chart_mirror_path

# containerd's runtime handler the container_runtime role configures as default.
NVIDIA_RUNTIME = "nvidia"


def operator_values() -> dict[str, Any]:
    return {
        "driver": {"enabled": False},  # nvidia_driver role: pinned, signed, held
        "toolkit": {"enabled": False},  # container_runtime role: pinned toolkit, containerd config
        "operator": {
            "defaultRuntime": "containerd",
            "runtimeClass": NVIDIA_RUNTIME,
            "upgradeCRD": True,
        },
        "devicePlugin": {"enabled": True},
        "gfd": {"enabled": True},
        "dcgm": {"enabled": True},
        "dcgmExporter": {"enabled": True},
        "nfd": {"enabled": True},
        # The node_health role does the burn-in; MIG stays off: inference nodes run whole GPUs.
        "migManager": {"enabled": False},
    }


def chart_source(chart: PinnedChart, mirror_url: str | None) -> dict[str, str]:
    """Where the cluster fetches the chart: the site mirror's file store when there is one."""
    if mirror_url:
        return {"chart": f"{mirror_url}/files/{chart_mirror_path(chart)}"}
    return {"chart": chart.chart, "repo": chart.repo, "version": chart.version}


@dataclass
class GpuOperatorArgs:
    site: str
    chart: PinnedChart
    mirror_url: str | None


class GpuOperator(pulumi.ComponentResource):
    def __init__(self, name: str, args: GpuOperatorArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ecohash:operator:GpuOperator", name, None, opts)
        own_labels = object_labels(args.site, "gpu-operator")
        # Pods that name the runtime explicitly (the operator's own validator does) find it.
        k8s.node.v1.RuntimeClass(
            f"{name}-runtime-class",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=NVIDIA_RUNTIME, labels=own_labels),
            handler=NVIDIA_RUNTIME,
            opts=pulumi.ResourceOptions(parent=self),
        )
        k8s.apiextensions.CustomResource(
            f"{name}-chart",
            api_version="helm.cattle.io/v1",
            kind="HelmChart",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="gpu-operator", namespace=HELM_NAMESPACE,
                                                labels=own_labels),
            spec={
                **chart_source(args.chart, args.mirror_url),
                "targetNamespace": OPERATOR_NAMESPACE,
                # A failed upgrade stays failed for a person to look at; `reinstall` would
                # uninstall the operator from a serving cluster.
                "failurePolicy": "abort",
                "valuesContent": yaml.safe_dump(operator_values(), sort_keys=True),
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"chart": args.chart.chart, "version": args.chart.version})
