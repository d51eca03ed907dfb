"""InferenceService: one vLLM OpenAI-compatible service in one modular container.

A service placed in several containers gets one of these per container (see
container.py for why); each is a Deployment with its Service, disruption budget
and autoscaler, all sized from the inventory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from ecohash.inventory import labels
from ecohash.inventory.model import InferenceService as ServiceSpec
from ecohash.inventory.services import ServicePlacement
from ecohash.stack.container import GPU_RESOURCE, gpu_tolerations
from ecohash.stack.names import object_labels

PORT = 8000
MODEL_CACHE = "/var/lib/ecohash/models"  # prepared on every GPU node by the inference_runtime role
# vLLM exports vllm:num_requests_waiting; Prometheus adapter serves it under this name
# (docs/stack.md has the rule). The autoscaler reads it per pod.
QUEUE_METRIC = "vllm_num_requests_waiting"
SERVICE_LABEL = "ecohash.io/service"


@dataclass
class InferenceServiceArgs:
    site: str
    service: ServiceSpec
    placement: ServicePlacement
    namespace: str
    image: str


class InferenceService(pulumi.ComponentResource):
    def __init__(self, name: str, args: InferenceServiceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ecohash:inference:InferenceService", name, None, opts)
        service, placement = args.service, args.placement
        selector = {"app.kubernetes.io/name": "vllm", SERVICE_LABEL: service.name,
                    labels.CONTAINER: placement.container}
        own_labels = {**object_labels(args.site, "inference"), **selector}
        metadata = k8s.meta.v1.ObjectMetaArgs(name=service.name, namespace=args.namespace, labels=own_labels)
        child = pulumi.ResourceOptions(parent=self)
        deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=metadata,
            spec=k8s.apps.v1.DeploymentSpecArgs(
                # No replicas: the autoscaler owns the count, and a declared one would be
                # reset on every apply, killing replicas that took minutes to load.
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
                # GPUs are all taken: a surge replica would have nowhere to run.
                strategy=k8s.apps.v1.DeploymentStrategyArgs(
                    type="RollingUpdate",
                    rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(max_surge=0, max_unavailable=1)),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=own_labels),
                    spec=_pod_spec(args, selector),
                ),
            ),
            opts=child,
        )
        k8s.core.v1.Service(
            f"{name}-service",
            metadata=metadata,
            spec=k8s.core.v1.ServiceSpecArgs(
                selector=selector,
                ports=[k8s.core.v1.ServicePortArgs(name="http", port=PORT, target_port="http")],
            ),
            opts=child,
        )
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-disruption-budget",
            metadata=metadata,
            # One replica at a time through a drain: each holds GPUs for minutes of load.
            spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                max_unavailable=1, selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector)),
            opts=child,
        )
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{name}-autoscaler",
            metadata=metadata,
            spec=k8s.autoscaling.v2.HorizontalPodAutoscalerSpecArgs(
                scale_target_ref=k8s.autoscaling.v2.CrossVersionObjectReferenceArgs(
                    api_version="apps/v1", kind="Deployment", name=service.name),
                min_replicas=service.replicas.min,
                max_replicas=service.replicas.max,
                metrics=[k8s.autoscaling.v2.MetricSpecArgs(
                    type="Pods",
                    pods=k8s.autoscaling.v2.PodsMetricSourceArgs(
                        metric=k8s.autoscaling.v2.MetricIdentifierArgs(name=QUEUE_METRIC),
                        target=k8s.autoscaling.v2.MetricTargetArgs(
                            type="AverageValue", average_value=str(service.autoscaling.queue_depth)),
                    ),
                )],
                # A replica costs a model load: scale up promptly, down only after a
                # sustained lull, one replica at a time.
                behavior=k8s.autoscaling.v2.HorizontalPodAutoscalerBehaviorArgs(
                    scale_up=k8s.autoscaling.v2.HPAScalingRulesArgs(
                        stabilization_window_seconds=60,
                        policies=[k8s.autoscaling.v2.HPAScalingPolicyArgs(
                            type="Pods", value=2, period_seconds=60)]),
                    scale_down=k8s.autoscaling.v2.HPAScalingRulesArgs(
                        stabilization_window_seconds=900,
                        policies=[k8s.autoscaling.v2.HPAScalingPolicyArgs(
                            type="Pods", value=1, period_seconds=300)]),
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[deployment]),
        )
        self.register_outputs({
            "namespace": args.namespace,
            "url": f"http://{service.name}.{args.namespace}.svc:{PORT}/v1",
            "gpus_per_replica": service.gpus_per_replica,
        })


def vllm_arguments(service: ServiceSpec) -> list[str]:
    arguments = [
        service.model,
        "--host", "0.0.0.0",
        "--port", str(PORT),
        "--tensor-parallel-size", str(service.gpus_per_replica),
        "--served-model-name", service.served_model_name or service.model,
    ]
    if service.max_model_len:
        arguments += ["--max-model-len", str(service.max_model_len)]
    return arguments


def _pod_spec(args: InferenceServiceArgs, selector: dict[str, str]) -> k8s.core.v1.PodSpecArgs:
    service, placement = args.service, args.placement
    gpus = service.gpus_per_replica
    memory = f"{service.memory_gib_per_gpu * gpus + service.shm_gib}Gi"  # /dev/shm counts against it
    env = [
        k8s.core.v1.EnvVarArgs(name="HF_HOME", value="/models"),
        k8s.core.v1.EnvVarArgs(name="VLLM_NO_USAGE_STATS", value="1"),
    ]
    if service.token_secret:
        env.append(k8s.core.v1.EnvVarArgs(name="HF_TOKEN", value_from=k8s.core.v1.EnvVarSourceArgs(
            secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(
                name=service.token_secret.name, key=service.token_secret.key))))
    health = k8s.core.v1.HTTPGetActionArgs(path="/health", port="http")
    return k8s.core.v1.PodSpecArgs(
        node_selector={labels.CONTAINER: placement.container, labels.GPU_MODEL: service.gpu_model},
        # Only SKUs whose nodes hold a whole replica (a 4-GPU node cannot take 8).
        affinity=k8s.core.v1.AffinityArgs(
            node_affinity=k8s.core.v1.NodeAffinityArgs(
                required_during_scheduling_ignored_during_execution=k8s.core.v1.NodeSelectorArgs(
                    node_selector_terms=[k8s.core.v1.NodeSelectorTermArgs(match_expressions=[
                        k8s.core.v1.NodeSelectorRequirementArgs(
                            key=labels.SKU, operator="In", values=list(placement.skus)),
                    ])])),
            # Spread replicas over racks: a rack's PDU trip takes the fewest with it.
            pod_anti_affinity=k8s.core.v1.PodAntiAffinityArgs(
                preferred_during_scheduling_ignored_during_execution=[
                    k8s.core.v1.WeightedPodAffinityTermArgs(
                        weight=100,
                        pod_affinity_term=k8s.core.v1.PodAffinityTermArgs(
                            topology_key=labels.RACK,
                            label_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector)),
                    )]),
        ),
        tolerations=gpu_tolerations(),
        automount_service_account_token=False,
        enable_service_links=False,
        termination_grace_period_seconds=120,  # lets in-flight generations finish
        containers=[k8s.core.v1.ContainerArgs(
            name="vllm",
            image=args.image,
            command=["vllm", "serve"],
            args=vllm_arguments(service),
            env=env,
            ports=[k8s.core.v1.ContainerPortArgs(name="http", container_port=PORT)],
            resources=k8s.core.v1.ResourceRequirementsArgs(
                requests={"cpu": str(service.cpus_per_gpu * gpus), "memory": memory, GPU_RESOURCE: str(gpus)},
                limits={"memory": memory, GPU_RESOURCE: str(gpus)},
            ),
            # Downloading and loading weights can take most of load_timeout_s; until the
            # startup probe passes, the others wait and nothing restarts the pod.
            startup_probe=k8s.core.v1.ProbeArgs(
                http_get=health, period_seconds=10,
                failure_threshold=math.ceil(service.load_timeout_s / 10)),
            readiness_probe=k8s.core.v1.ProbeArgs(http_get=health, period_seconds=5, failure_threshold=3),
            liveness_probe=k8s.core.v1.ProbeArgs(
                http_get=health, period_seconds=15, timeout_seconds=5, failure_threshold=4),
            volume_mounts=[
                k8s.core.v1.VolumeMountArgs(name="dshm", mount_path="/dev/shm"),
                k8s.core.v1.VolumeMountArgs(name="model-cache", mount_path="/models"),
            ],
        )],
        volumes=[
            # NCCL between a replica's GPUs goes through /dev/shm; the runtime's 64 MiB default
            # makes tensor-parallel replicas crash at first load.
            k8s.core.v1.VolumeArgs(name="dshm", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(
                medium="Memory", size_limit=f"{service.shm_gib}Gi")),
            k8s.core.v1.VolumeArgs(name="model-cache", host_path=k8s.core.v1.HostPathVolumeSourceArgs(
                path=MODEL_CACHE, type="Directory")),
        ],
    )
