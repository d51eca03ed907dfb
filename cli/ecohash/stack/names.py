"""Namespaces and the labels every object the site stack declares carries."""

from __future__ import annotations

from ecohash.errors import InvalidInputError
from ecohash.inventory import labels

SYSTEM_NAMESPACE = "ecohash-system"  # power budget and its exporter
OPERATOR_NAMESPACE = "gpu-operator"
# k3s and RKE2 run their Helm controller over HelmChart objects in kube-system.
HELM_NAMESPACE = "kube-system"
MANAGED_BY = {"app.kubernetes.io/managed-by": "ecohash", "app.kubernetes.io/part-of": "ecohash"}


def container_namespace(container: str) -> str:
    """Each modular container's workloads live in a namespace of their own (docs/stack.md)."""
    name = f"ecohash-{container}"
    if name in (SYSTEM_NAMESPACE, OPERATOR_NAMESPACE):
        raise InvalidInputError(
            f"container {container!r}: its namespace {name!r} is the one ecohash keeps for itself; "
            "rename the container"
        )
    if len(name) > 63:
        raise InvalidInputError(
            f"container {container!r}: its namespace {name!r} would be longer than 63 characters; "
            "shorten the container's name"
        )
    return name


def object_labels(site: str, component: str, **extra: str) -> dict[str, str]:
    return {**MANAGED_BY, "app.kubernetes.io/component": component, labels.SITE: site, **extra}
