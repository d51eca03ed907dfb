"""PowerBudget: the compiled budget inside the cluster, and an exporter of draw against it.

The budget is `ecohash plan --json` (less the site file's local path), split so that no
ConfigMap grows past what etcd takes (1 MiB) however many nodes a site has: `power-budget`
holds the site's own figures and its containers' names, in order (site.json), and one
`power-budget-<container>` per container holds everything of that container: its entry
with its racks (container.json) and its nodes (nodes.json). So the site's ConfigMap grows
by a name per container, never with racks or nodes. Put back together they are the plan,
key for key; policy.py checks exactly that.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from ecohash.errors import InvalidInputError
from ecohash.inventory import labels
from ecohash.json_text import dumps_indented
from ecohash.stack.container import gpu_tolerations
from ecohash.stack.names import SYSTEM_NAMESPACE, object_labels

SITE_CONFIGMAP = "power-budget"
EXPORTER = "power-exporter"
EXPORTER_PORT = 9847
BUDGET_DIR = "/etc/ecohash/budget"
EXPORTER_DIR = "/opt/ecohash"
# etcd refuses objects over ~1.5 MiB; ConfigMaps are documented to 1 MiB.
CONFIGMAP_LIMIT_BYTES = 1024 * 1024
# Marks a pod that reaches GPUs without requesting them (read-only monitoring);
# policy.py allows NVIDIA_VISIBLE_DEVICES=all only under it.
GPU_ACCESS_ANNOTATION = "ecohash.io/gpu-access"


# Keys of `ecohash plan --json` that describe the machine it ran on, not the budget: the
# site file's path as given. Left out so a render is the same from any checkout or cwd.
LOCAL_KEYS = ("file",)


def container_configmap(container: str) -> str:
    return f"{SITE_CONFIGMAP}-{container}"


def split_plan(plan: dict[str, Any]) -> dict[str, dict[str, str]]:
    """ConfigMap name -> data: the site and its containers' names, then each container whole."""
    site = {key: value for key, value in plan.items() if key not in ("nodes", *LOCAL_KEYS)}
    site["containers"] = [container["name"] for container in plan["containers"]]
    split = {SITE_CONFIGMAP: {"site.json": _json(site)}}
    nodes_of = _nodes_by_container(plan)
    for container in plan["containers"]:
        split[container_configmap(container["name"])] = {
            "container.json": _json(container),
            "nodes.json": _json_lines(nodes_of.get(container["name"], [])),
        }
    for name, data in split.items():
        _check_size(name, data, len(plan["containers"]))
    return split


def _nodes_by_container(plan: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    # One pass over the nodes, in their order: not one per container (250 x 50,000).
    nodes_of: dict[str, list[dict[str, Any]]] = {}
    for node in plan["nodes"]:
        nodes_of.setdefault(node["container"], []).append(node)
    return nodes_of


def _check_size(name: str, data: dict[str, str], containers: int) -> None:
    size = sum(len(value.encode()) for value in data.values())
    if size <= CONFIGMAP_LIMIT_BYTES:
        return
    remedy = (f"the site has more containers ({containers}) than it can name"
              if name == SITE_CONFIGMAP else "split the container into smaller ones")
    raise InvalidInputError(
        f"ConfigMap {name} would hold {size} bytes of budget, over Kubernetes' 1 MiB; {remedy}")


def _json(value: Any) -> str:
    # Indented like `ecohash plan --json`, so a reviewer reads the same text in both.
    return dumps_indented(value) + "\n"


def _json_lines(nodes: list[dict[str, Any]]) -> str:
    # One node a line: still one JSON document, a third the size of indented JSON (so a
    # container of thousands of nodes fits a ConfigMap), and a changed cap is a one-line diff.
    return "[\n" + ",\n".join(json.dumps(node) for node in nodes) + "\n]\n"


def exporter_source() -> str:
    return resources.files("ecohash.stack").joinpath("power_exporter.py").read_text()


@dataclass
class PowerBudgetArgs:
    site: str
    plan: dict[str, Any]  # ecohash.report.plan_data of the compiled budget
    image: str  # the inference image: pinned by digest, pre-pulled on every GPU node, has python3


class PowerBudget(pulumi.ComponentResource):
    def __init__(self, name: str, args: PowerBudgetArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ecohash:power:PowerBudget", name, None, opts)
        own_labels = object_labels(args.site, "power-budget")
        child = pulumi.ResourceOptions(parent=self)
        configmaps = {
            cm_name: k8s.core.v1.ConfigMap(
                f"{name}-{cm_name}",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=cm_name, namespace=SYSTEM_NAMESPACE,
                                                    labels=own_labels),
                data=data,
                opts=child,
            )
            for cm_name, data in split_plan(args.plan).items()
        }
        source = k8s.core.v1.ConfigMap(
            f"{name}-exporter-source",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=EXPORTER, namespace=SYSTEM_NAMESPACE,
                                                labels=object_labels(args.site, EXPORTER)),
            data={"power_exporter.py": exporter_source()},
            opts=child,
        )
        containers = [c["name"] for c in args.plan["containers"]]
        k8s.apps.v1.DaemonSet(
            f"{name}-exporter",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=EXPORTER, namespace=SYSTEM_NAMESPACE,
                                                labels=object_labels(args.site, EXPORTER)),
            spec=_exporter_spec(args.site, args.image, containers),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[source, *configmaps.values()]),
        )
        k8s.core.v1.Service(
            f"{name}-exporter",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=EXPORTER, namespace=SYSTEM_NAMESPACE,
                                                labels=object_labels(args.site, EXPORTER)),
            spec=k8s.core.v1.ServiceSpecArgs(
                cluster_ip="None",  # headless: Prometheus scrapes each node's exporter
                selector=_selector(args.site),
                ports=[k8s.core.v1.ServicePortArgs(name="metrics", port=EXPORTER_PORT,
                                                   target_port="metrics")],
            ),
            opts=child,
        )
        self.register_outputs({
            "configmaps": sorted(configmaps),
            "exporter": EXPORTER,
        })


def _selector(site: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": EXPORTER, labels.SITE: site}


def _exporter_spec(site: str, image: str, containers: list[str]) -> k8s.apps.v1.DaemonSetSpecArgs:
    # Every container's nodes in one projected volume: one DaemonSet for the site, and
    # each pod finds its own node by name (NODE_NAME from the Downward API).
    budget_sources = [k8s.core.v1.VolumeProjectionArgs(config_map=k8s.core.v1.ConfigMapProjectionArgs(
        name=SITE_CONFIGMAP, items=[k8s.core.v1.KeyToPathArgs(key="site.json", path="site.json")]))]
    budget_sources += [
        k8s.core.v1.VolumeProjectionArgs(config_map=k8s.core.v1.ConfigMapProjectionArgs(
            name=container_configmap(c),
            items=[k8s.core.v1.KeyToPathArgs(key="nodes.json", path=f"nodes/{c}.json")]))
        for c in containers
    ]
    probe = k8s.core.v1.ProbeArgs(
        http_get=k8s.core.v1.HTTPGetActionArgs(path="/healthz", port="metrics"),
        period_seconds=30,
    )
    return k8s.apps.v1.DaemonSetSpecArgs(
        selector=k8s.meta.v1.LabelSelectorArgs(match_labels=_selector(site)),
        update_strategy=k8s.apps.v1.DaemonSetUpdateStrategyArgs(type="RollingUpdate"),
        template=k8s.core.v1.PodTemplateSpecArgs(
            metadata=k8s.meta.v1.ObjectMetaArgs(
                labels={**object_labels(site, EXPORTER), **_selector(site)},
                annotations={
                    GPU_ACCESS_ANNOTATION: "monitor",
                    "prometheus.io/scrape": "true",
                    "prometheus.io/port": str(EXPORTER_PORT),
                },
            ),
            spec=k8s.core.v1.PodSpecArgs(
                # Only the site's GPU nodes: they are the ones labelled with a GPU model.
                affinity=k8s.core.v1.AffinityArgs(node_affinity=k8s.core.v1.NodeAffinityArgs(
                    required_during_scheduling_ignored_during_execution=k8s.core.v1.NodeSelectorArgs(
                        node_selector_terms=[k8s.core.v1.NodeSelectorTermArgs(match_expressions=[
                            k8s.core.v1.NodeSelectorRequirementArgs(
                                key=labels.SITE, operator="In", values=[site]),
                            k8s.core.v1.NodeSelectorRequirementArgs(key=labels.GPU_MODEL, operator="Exists"),
                        ])]))),
                tolerations=gpu_tolerations(),
                automount_service_account_token=False,
                enable_service_links=False,
                containers=[k8s.core.v1.ContainerArgs(
                    name=EXPORTER,
                    image=image,
                    command=["python3", f"{EXPORTER_DIR}/power_exporter.py",
                             "--budget-dir", BUDGET_DIR, "--listen", f"0.0.0.0:{EXPORTER_PORT}"],
                    env=[
                        k8s.core.v1.EnvVarArgs(name="NODE_NAME", value_from=k8s.core.v1.EnvVarSourceArgs(
                            field_ref=k8s.core.v1.ObjectFieldSelectorArgs(field_path="spec.nodeName"))),
                        # NVIDIA's runtime mounts nvidia-smi and every GPU, read-only use:
                        # the exporter requests no GPU, so it never takes one from a service.
                        k8s.core.v1.EnvVarArgs(name="NVIDIA_VISIBLE_DEVICES", value="all"),
                        k8s.core.v1.EnvVarArgs(name="NVIDIA_DRIVER_CAPABILITIES", value="utility"),
                    ],
                    ports=[k8s.core.v1.ContainerPortArgs(name="metrics", container_port=EXPORTER_PORT)],
                    readiness_probe=probe,
                    liveness_probe=probe,
                    resources=k8s.core.v1.ResourceRequirementsArgs(
                        requests={"cpu": "20m", "memory": "64Mi"}, limits={"memory": "128Mi"}),
                    security_context=k8s.core.v1.SecurityContextArgs(
                        allow_privilege_escalation=False, read_only_root_filesystem=True,
                        capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"])),
                    volume_mounts=[
                        k8s.core.v1.VolumeMountArgs(name="budget", mount_path=BUDGET_DIR, read_only=True),
                        k8s.core.v1.VolumeMountArgs(name="exporter", mount_path=EXPORTER_DIR, read_only=True),
                    ],
                )],
                volumes=[
                    k8s.core.v1.VolumeArgs(name="budget", projected=k8s.core.v1.ProjectedVolumeSourceArgs(
                        sources=budget_sources)),
                    k8s.core.v1.VolumeArgs(name="exporter", config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(
                        name=EXPORTER)),
                ],
            ),
        ),
    )
