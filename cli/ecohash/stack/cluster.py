"""SiteCluster: the site's Kubernetes provider and the namespaces every site has."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from ecohash.stack.names import OPERATOR_NAMESPACE, SYSTEM_NAMESPACE, object_labels


@dataclass
class SiteClusterArgs:
    site: str
    # The kubeconfig's text, as a secret Output. None only under `ecohash render`, whose
    # mock monitor never connects; `apply` refuses to run without one (program.py).
    kubeconfig: pulumi.Input[str] | None
    namespaces: Sequence[str] = field(default=(SYSTEM_NAMESPACE, OPERATOR_NAMESPACE))


class SiteCluster(pulumi.ComponentResource):
    """The cluster every other component is declared into (pass `providers`)."""

    provider: k8s.Provider
    namespaces: dict[str, k8s.core.v1.Namespace]

    def __init__(self, name: str, args: SiteClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ecohash:cluster:SiteCluster", name, None, opts)
        self.provider = k8s.Provider(
            f"{name}-kubernetes",
            kubeconfig=args.kubeconfig,
            # Server-side apply: fields others own (the HPA's replicas, the operator's
            # status) are left alone instead of being fought over on every update.
            enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.namespaces = {
            namespace: k8s.core.v1.Namespace(
                namespace,
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=namespace, labels=object_labels(args.site, "namespace")),
                opts=pulumi.ResourceOptions(parent=self, provider=self.provider),
            )
            for namespace in args.namespaces
        }
        self.register_outputs({"namespaces": sorted(self.namespaces)})
