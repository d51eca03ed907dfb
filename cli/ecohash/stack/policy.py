"""Policies every rendered site must pass, as plain functions over its objects.

Plain functions, not a Pulumi PolicyPack: a pack starts a server when constructed,
and these run in `ecohash render`, in tests and in the GitOps pipeline alike.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ecohash.stack.container import GPU_RESOURCE
from ecohash.stack.power import GPU_ACCESS_ANNOTATION, LOCAL_KEYS, SITE_CONFIGMAP, container_configmap

WORKLOAD_KINDS = {"Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "Job"}
# Names that hold credentials; their values belong in a Secret, referenced.
_SECRET_NAME = re.compile(r"(TOKEN|PASSWORD|PASSWD|SECRET|API_?KEY|CREDENTIAL|PRIVATE_?KEY)", re.I)
# Shapes of credentials, wherever they appear in plain text.
_SECRET_VALUE = re.compile(
    r"(hf_[A-Za-z0-9]{20,}|-----BEGIN [A-Z ]*PRIVATE KEY-----|gh[pousr]_[A-Za-z0-9]{30,}"
    r"|(?i:(token|password|passwd|secret|api_?key)\s*[:=]\s*\S+))"
)


@dataclass(frozen=True, order=True)
class Violation:
    object: str
    message: str

    def __str__(self) -> str:
        return f"{self.object}: {self.message}"


def check_policies(objects: list[dict[str, Any]], plan: dict[str, Any]) -> list[Violation]:
    return sorted([
        *gpu_workloads_have_limits(objects),
        *no_plain_secrets(objects),
        *budget_matches_plan(objects, plan),
    ])


def _label(obj: dict[str, Any]) -> str:
    metadata = obj.get("metadata", {})
    where = f"{metadata['namespace']}/" if metadata.get("namespace") else ""
    return f"{obj.get('kind')} {where}{metadata.get('name')}"


def _pod_templates(objects: Iterable[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for obj in objects:
        if obj.get("kind") in WORKLOAD_KINDS:
            yield obj, obj.get("spec", {}).get("template", {})
        elif obj.get("kind") == "Pod":
            yield obj, obj


def gpu_workloads_have_limits(objects: Iterable[dict[str, Any]]) -> Iterator[Violation]:
    """A container that asks for GPUs has a GPU limit equal to its request and a memory limit;
    one that reaches GPUs without asking is a declared, read-only monitor."""
    for obj, template in _pod_templates(objects):
        annotations = template.get("metadata", {}).get("annotations") or {}
        for container in template.get("spec", {}).get("containers", []):
            resources = container.get("resources") or {}
            requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
            where = f"container {container.get('name')}"
            wants_gpus = GPU_RESOURCE in requests or GPU_RESOURCE in limits
            if wants_gpus:
                if GPU_RESOURCE not in limits:
                    yield Violation(_label(obj), f"{where} requests {GPU_RESOURCE} without a limit")
                elif GPU_RESOURCE in requests and str(requests[GPU_RESOURCE]) != str(limits[GPU_RESOURCE]):
                    yield Violation(_label(obj), f"{where}: {GPU_RESOURCE} request and limit differ")
                if "memory" not in limits:
                    yield Violation(_label(obj), f"{where} uses GPUs without a memory limit")
            env = {e.get("name"): e.get("value") for e in container.get("env") or []}
            if env.get("NVIDIA_VISIBLE_DEVICES") not in (None, "void", "none"):
                if wants_gpus:
                    yield Violation(_label(obj), f"{where} sets NVIDIA_VISIBLE_DEVICES besides requesting "
                                    "GPUs: it would see GPUs other replicas hold")
                elif annotations.get(GPU_ACCESS_ANNOTATION) != "monitor":
                    yield Violation(_label(obj), f"{where} reaches GPUs through NVIDIA_VISIBLE_DEVICES "
                                    f"without requesting any; only pods annotated "
                                    f"{GPU_ACCESS_ANNOTATION}=monitor may")


def no_plain_secrets(objects: Iterable[dict[str, Any]]) -> Iterator[Violation]:
    """Credentials are referenced from Secrets, never written into objects, values or config."""
    for obj in objects:
        if obj.get("kind") == "Secret" and (obj.get("data") or obj.get("stringData")):
            yield Violation(_label(obj), "a Secret with its values in the render: secrets are "
                            "created out of band and only referenced")
        for _, template in _pod_templates([obj]):
            for container in template.get("spec", {}).get("containers", []):
                for env in container.get("env") or []:
                    if "value" in env and _SECRET_NAME.search(env.get("name", "")):
                        yield Violation(_label(obj), f"container {container.get('name')}: env "
                                        f"{env['name']} has a plain value; use valueFrom.secretKeyRef")
                for argument in container.get("args") or []:
                    if _SECRET_VALUE.search(str(argument)):
                        yield Violation(_label(obj), f"container {container.get('name')}: an argument "
                                        "looks like a credential")
        for where, text in _plain_texts(obj):
            if _SECRET_VALUE.search(text):
                yield Violation(_label(obj), f"{where} holds what looks like a credential")


def _plain_texts(obj: dict[str, Any]) -> Iterator[tuple[str, str]]:
    if obj.get("kind") == "ConfigMap":
        for key, value in (obj.get("data") or {}).items():
            # The exporter's own source is code, reviewed as such.
            if not key.endswith(".py"):
                yield f"data.{key}", str(value)
    if obj.get("kind") == "HelmChart":
        spec = obj.get("spec") or {}
        yield "spec.valuesContent", str(spec.get("valuesContent", ""))
        for key, value in (spec.get("set") or {}).items():
            yield f"spec.set.{key}", f"{key}={value}"


def budget_matches_plan(objects: Iterable[dict[str, Any]], plan: dict[str, Any]) -> Iterator[Violation]:
    """The power-budget ConfigMaps, put back together, are `ecohash plan --json`, key for key
    (but the site file's local path)."""
    configmaps = {o["metadata"]["name"]: o for o in objects if o.get("kind") == "ConfigMap"}
    site_map = configmaps.get(SITE_CONFIGMAP)
    if site_map is None:
        yield Violation(f"ConfigMap {SITE_CONFIGMAP}", "missing: the cluster would not know its budget")
        return
    # site.json names the containers, in order; each one's ConfigMap holds its entry and nodes.
    rebuilt = json.loads(site_map["data"]["site.json"])
    containers, nodes = [], []
    for container in rebuilt["containers"]:
        name = container_configmap(container)
        if name not in configmaps:
            yield Violation(f"ConfigMap {name}", "missing: its container's nodes have no budget")
            return
        containers.append(json.loads(configmaps[name]["data"]["container.json"]))
        nodes += json.loads(configmaps[name]["data"]["nodes.json"])
    rebuilt.update(containers=containers, nodes=nodes)
    expected = {key: value for key, value in plan.items() if key not in LOCAL_KEYS}
    if rebuilt != expected:
        differing = sorted(k for k in expected.keys() | rebuilt.keys() if expected.get(k) != rebuilt.get(k))
        yield Violation(f"ConfigMap {SITE_CONFIGMAP}", "differs from `ecohash plan --json` in "
                        + ", ".join(differing))
