"""Where an inference service can run, and the site-wide checks of its declaration.

A service runs as one Deployment in each modular container it is placed in (see
docs/stack.md for why), so placement is computed per container: the nodes of the
service's GPU model (and SKUs, when given) whose GPUs hold at least one replica.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ecohash.inventory import messages
from ecohash.inventory.model import InferenceService, Sku
from ecohash.inventory.site import Node, YamlPath

Report = Callable[[YamlPath, str], None]


@dataclass(frozen=True)
class ServicePlacement:
    """A service's share of one container."""

    container: str
    skus: tuple[str, ...]  # the SKUs its replicas may land on, sorted
    gpus: int  # GPUs replicas can use there: each node's GPUs, rounded down to whole replicas

    def replicas_that_fit(self, gpus_per_replica: int) -> int:
        return self.gpus // gpus_per_replica


@dataclass(frozen=True)
class NodeGroup:
    """The nodes of one SKU in one container: all that placement needs to know of them."""

    container: str
    sku_name: str
    sku: Sku
    nodes: int


def group_nodes(nodes: Iterable[Node]) -> list[NodeGroup]:
    """Nodes by container and SKU, in site order: what placement walks, once per service.

    A site has tens of thousands of nodes but a handful of SKUs per container, and
    every service is placed against all of them.
    """
    counts: dict[tuple[str, str], int] = {}
    skus: dict[str, Sku] = {}
    for node in nodes:
        key = (node.container, node.sku_name)
        counts[key] = counts.get(key, 0) + 1
        skus.setdefault(node.sku_name, node.sku)
    return [NodeGroup(container, sku_name, skus[sku_name], count)
            for (container, sku_name), count in counts.items()]


def place(service: InferenceService, nodes: Iterable[Node]) -> list[ServicePlacement]:
    """The containers a service runs in, in site order; empty when it fits nowhere."""
    return place_groups(service, group_nodes(nodes))


def place_groups(service: InferenceService, groups: Iterable[NodeGroup]) -> list[ServicePlacement]:
    """place(), given the site's nodes already grouped (group_nodes)."""
    wanted = set(service.placement.containers or ())
    skus_allowed = set(service.placement.skus or ())
    skus: dict[str, set[str]] = {}
    usable: dict[str, int] = {}
    containers: dict[str, None] = {}  # site order
    for group in groups:
        containers.setdefault(group.container)
        gpus = group.sku.gpus
        if (wanted and group.container not in wanted) or group.sku.gpu != service.gpu_model:
            continue
        if (skus_allowed and group.sku_name not in skus_allowed) or gpus < service.gpus_per_replica:
            continue
        skus.setdefault(group.container, set()).add(group.sku_name)
        whole = gpus - gpus % service.gpus_per_replica
        usable[group.container] = usable.get(group.container, 0) + whole * group.nodes
    return [ServicePlacement(c, tuple(sorted(skus[c])), usable[c]) for c in containers if c in skus]


def check_services(raw_services: Any, nodes: Sequence[Node], gpu_models: Iterable[str],
                   skus: dict[str, Any], container_names: Sequence[str], report: Report) -> None:
    """Cross-checks of spec.services against the site; structure is the model's job."""
    if not isinstance(raw_services, list):
        return
    models = sorted(gpu_models)
    groups = group_nodes(nodes)
    seen: dict[str, int] = {}
    # Keyed by (container, GPU model): the pool of GPUs that services of one model share.
    minimum_gpus: dict[tuple[str, str], int] = {}
    last_path: dict[tuple[str, str], YamlPath] = {}
    for index, raw in enumerate(raw_services):
        try:
            service = InferenceService.model_validate(raw)
        except ValidationError:
            continue  # reported by the full validation
        path: YamlPath = ("spec", "services", index)
        if service.name in seen:
            report((*path, "name"), f"duplicate service name {service.name!r} "
                   f"(also services[{seen[service.name]}])")
        seen.setdefault(service.name, index)
        if service.gpu_model not in models:
            report((*path, "gpu_model"), f"unknown gpu model {service.gpu_model!r}"
                   + messages.suggest(service.gpu_model, models))
            continue
        if not _references_exist(service, path, skus, container_names, report):
            continue
        placements = place_groups(service, groups)
        if not _fits(service, path, placements, groups, report):
            continue
        for placement in placements:
            needed = service.replicas.min * service.gpus_per_replica
            if needed > placement.gpus:
                report((*path, "replicas", "min"),
                       f"service {service.name!r}: replicas.min {service.replicas.min} x "
                       f"{service.gpus_per_replica} GPUs needs {needed} {service.gpu_model} GPUs in "
                       f"container {placement.container}, which has {placement.gpus} for it")
                continue  # one message for one mistake: the sum below would repeat it
            pool = (placement.container, service.gpu_model)
            minimum_gpus[pool] = minimum_gpus.get(pool, 0) + needed
            last_path[pool] = (*path, "replicas", "min")
    # Services of one GPU model share that model's GPUs in a container.
    gpus_in: dict[tuple[str, str | None], int] = {}
    for group in groups:
        group_pool = (group.container, group.sku.gpu)
        gpus_in[group_pool] = gpus_in.get(group_pool, 0) + group.sku.gpus * group.nodes
    for (container, model), needed in minimum_gpus.items():
        if needed > gpus_in[container, model]:
            report(last_path[container, model],
                   f"services' replicas.min need {needed} {model} GPUs in container {container} together, "
                   f"which has {gpus_in[container, model]}")


def _references_exist(service: InferenceService, path: YamlPath, skus: dict[str, Any],
                      container_names: Sequence[str], report: Report) -> bool:
    ok = True
    for i, container in enumerate(service.placement.containers or ()):
        if container not in container_names:
            report((*path, "placement", "containers", i), f"unknown container {container!r}"
                   + messages.suggest(container, list(container_names)))
            ok = False
    for i, sku_name in enumerate(service.placement.skus or ()):
        sku = skus.get(sku_name)
        if sku is None:
            report((*path, "placement", "skus", i), f"unknown sku {sku_name!r}"
                   + messages.suggest(sku_name, sorted(skus)))
            ok = False
        elif sku.gpu != service.gpu_model:
            report((*path, "placement", "skus", i),
                   f"sku {sku_name!r} has {sku.gpu or 'no'} GPUs, not the service's {service.gpu_model}")
            ok = False
    return ok


def _fits(service: InferenceService, path: YamlPath, placements: list[ServicePlacement],
          groups: Sequence[NodeGroup], report: Report) -> bool:
    """Whether every container the service names (or at least one, by default) holds a replica."""
    if service.replicas.min > service.replicas.max:
        report((*path, "replicas"), f"replicas.min {service.replicas.min} is above "
               f"replicas.max {service.replicas.max}")
        return False
    placed = {p.container for p in placements}
    largest = max((g.sku.gpus for g in groups if g.sku.gpu == service.gpu_model), default=0)
    if service.placement.containers:
        missing = [c for c in service.placement.containers if c not in placed]
        for container in missing:
            i = service.placement.containers.index(container)
            report((*path, "placement", "containers", i),
                   f"service {service.name!r}: container {container} has no {service.gpu_model} node "
                   f"with {service.gpus_per_replica} GPUs for a replica")
        return not missing
    if not placements:
        what = (f"the largest {service.gpu_model} node has {largest}" if largest
                else f"the site has no {service.gpu_model} node")
        where = "gpus_per_replica" if largest else "gpu_model"
        report((*path, where), f"service {service.name!r}: a replica needs "
               f"{service.gpus_per_replica} GPUs on one node; {what}")
        return False
    return True
