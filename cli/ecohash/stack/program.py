"""The site stack's program: every component of one site, declared from its inventory.

stacks/__main__.py calls site_program() under the Pulumi CLI (`ecohash apply`), and
render.py calls it under Pulumi's mock monitor (`ecohash render`): one program, so
what reviewers read is what gets applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi

from ecohash.budget import Plan, compile_budget
from ecohash.errors import EcohashError, InvalidInputError, SiteNotFoundError
from ecohash.inventory import Site, load_site
from ecohash.inventory.services import group_nodes, place_groups
from ecohash.paths import SITE_FILE_NAME, kubeconfig_file, project_root, resolve_site
from ecohash.report import plan_data
from ecohash.stack.cluster import SiteCluster, SiteClusterArgs
from ecohash.stack.container import GpuContainer, GpuContainerArgs
from ecohash.stack.inference import PORT, InferenceService, InferenceServiceArgs
from ecohash.stack.names import OPERATOR_NAMESPACE, SYSTEM_NAMESPACE
from ecohash.stack.operator import GpuOperator, GpuOperatorArgs
from ecohash.stack.power import PowerBudget, PowerBudgetArgs
from ecohash.standard import NodeStandard, image_reference, load_standard, standard_file_of


@dataclass
class SiteStack:
    cluster: SiteCluster
    containers: dict[str, GpuContainer]
    services: list[InferenceService]


def read_kubeconfig(site: Site) -> pulumi.Output[str]:
    """The cluster's credentials, as a secret: encrypted in state, never printed."""
    path = kubeconfig_file(site)
    try:
        text = path.read_text()
    except OSError as error:
        # Never fall back to ~/.kube/config: that would apply one site's stack to whatever
        # cluster the laptop last talked to.
        raise EcohashError(
            f"site {site.name}: cannot read its kubeconfig {path} ({error.strerror or error}); copy "
            "/etc/rancher/k3s/k3s.yaml from a server there (mode 0600, server address fixed) or "
            "set spec.kubernetes.kubeconfig"
        ) from None
    return pulumi.Output.secret(text)


def site_program(site_ref: str, *, offline: bool = False) -> SiteStack:
    """Declare SITE's resources; `offline` (render) declares them without credentials."""
    site = load_site(_site_file(site_ref))
    standard = load_standard(standard_file_of(site))
    kubeconfig = None if offline else read_kubeconfig(site)
    return declare_site(site, standard, compile_budget(site), kubeconfig)


def _site_file(site_ref: str) -> Path:
    # The Pulumi CLI runs this program from stacks/, where ./inventories is not the
    # checkout's: a site named by its stack is looked for there too.
    try:
        return resolve_site(site_ref)
    except SiteNotFoundError:
        candidate = project_root() / "inventories" / site_ref / SITE_FILE_NAME
        if candidate.is_file():
            return candidate
        raise


def declare_site(site: Site, standard: NodeStandard, plan: Plan,
                 kubeconfig: pulumi.Input[str] | None) -> SiteStack:
    if site.kubernetes is None:
        raise InvalidInputError(f"{site.file}: site {site.name} has no spec.kubernetes: there is no "
                                "cluster to declare")
    image = image_reference(standard, site.provisioning.registry)
    cluster = SiteCluster(site.name, SiteClusterArgs(site=site.name, kubeconfig=kubeconfig))
    in_cluster = pulumi.ResourceOptions(provider=cluster.provider)
    mirror = site.provisioning.mirror
    GpuOperator("gpu-operator", GpuOperatorArgs(
        site=site.name, chart=standard.gpu_operator, mirror_url=mirror.url if mirror else None),
        opts=in_cluster.merge(pulumi.ResourceOptions(depends_on=[cluster.namespaces[OPERATOR_NAMESPACE]])))
    PowerBudget("power-budget", PowerBudgetArgs(site=site.name, plan=plan_data(plan), image=image),
                opts=in_cluster.merge(pulumi.ResourceOptions(
                    depends_on=[cluster.namespaces[SYSTEM_NAMESPACE]])))
    containers = {
        container.name: GpuContainer(container.name, GpuContainerArgs(
            site=site.name, container=container.name, cooling=container.cooling,
            gpus=sum(node.gpus for node in container.nodes)), opts=in_cluster)
        for container in site.containers
        if any(node.gpus for node in container.nodes)
    }
    groups = group_nodes(site.nodes)
    placed = [(service, placement)
              for service in site.services for placement in place_groups(service, groups)]
    services = [
        # '/' cannot occur in either name, so no two placements can share a resource name.
        InferenceService(f"{service.name}/{placement.container}", InferenceServiceArgs(
            site=site.name, service=service, placement=placement,
            namespace=containers[placement.container].namespace, image=image),
            opts=in_cluster.merge(pulumi.ResourceOptions(depends_on=[containers[placement.container]])))
        for service, placement in placed
    ]
    endpoints: dict[str, list[str]] = {}
    for service, placement in placed:
        endpoints.setdefault(service.name, []).append(
            f"http://{service.name}.{containers[placement.container].namespace}.svc:{PORT}/v1")
    pulumi.export("site", site.name)
    pulumi.export("endpoints", endpoints)
    return SiteStack(cluster, containers, services)
