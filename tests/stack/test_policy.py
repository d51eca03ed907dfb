"""The render policies, each shown catching what it exists for (and passing a clean render)."""

from __future__ import annotations

import copy
import json

import pytest

from ecohash.budget import compile_budget
from ecohash.inventory import load_site
from ecohash.report import plan_data
from ecohash.stack.policy import (
    budget_matches_plan,
    check_policies,
    gpu_workloads_have_limits,
    no_plain_secrets,
)
from ecohash.stack.render import render_site
from ecohash.standard import load_standard
from tests.conftest import REPO


@pytest.fixture(scope="module")
def site_render():
    site = load_site(REPO / "inventories/tx-odessa/site.yaml")
    return render_site(site, load_standard()).objects, plan_data(compile_budget(site))


def find(objects, kind, name, namespace=None):
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name
                and (namespace is None or o["metadata"].get("namespace") == namespace))


def vllm(objects):
    deployment = find(objects, "Deployment", "llama-70b", "ecohash-c01")
    return deployment["spec"]["template"]["spec"]["containers"][0]


def messages(violations):
    return [str(v) for v in violations]


def test_a_clean_render_meets_every_policy(site_render):
    objects, plan = site_render
    assert check_policies(objects, plan) == []


def test_a_gpu_request_without_limits_is_refused(site_render):
    objects = copy.deepcopy(site_render[0])
    vllm(objects)["resources"]["limits"] = {}
    assert messages(gpu_workloads_have_limits(objects)) == [
        "Deployment ecohash-c01/llama-70b: container vllm requests nvidia.com/gpu without a limit",
        "Deployment ecohash-c01/llama-70b: container vllm uses GPUs without a memory limit",
    ]


def test_gpu_request_and_limit_must_agree(site_render):
    objects = copy.deepcopy(site_render[0])
    vllm(objects)["resources"]["requests"]["nvidia.com/gpu"] = "2"
    assert messages(gpu_workloads_have_limits(objects)) == [
        "Deployment ecohash-c01/llama-70b: container vllm: nvidia.com/gpu request and limit differ"]


def test_reaching_gpus_around_the_device_plugin_needs_the_monitor_annotation(site_render):
    objects = copy.deepcopy(site_render[0])
    exporter = find(objects, "DaemonSet", "power-exporter")
    del exporter["spec"]["template"]["metadata"]["annotations"]["ecohash.io/gpu-access"]
    vllm(objects)["env"].append({"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"})
    assert messages(gpu_workloads_have_limits(objects)) == [
        "Deployment ecohash-c01/llama-70b: container vllm sets NVIDIA_VISIBLE_DEVICES besides requesting "
        "GPUs: it would see GPUs other replicas hold",
        "DaemonSet ecohash-system/power-exporter: container power-exporter reaches GPUs through "
        "NVIDIA_VISIBLE_DEVICES without requesting any; only pods annotated ecohash.io/gpu-access=monitor may",
    ]


@pytest.mark.parametrize(("tamper", "expected"), [
    (lambda o: vllm(o)["env"].__setitem__(2, {"name": "HF_TOKEN", "value": "hf_" + "a" * 30}),
     "Deployment ecohash-c01/llama-70b: container vllm: env HF_TOKEN has a plain value; use "
     "valueFrom.secretKeyRef"),
    (lambda o: vllm(o)["args"].extend(["--api-key", "token=s3cr3t-value"]),
     "Deployment ecohash-c01/llama-70b: container vllm: an argument looks like a credential"),
    (lambda o: find(o, "ConfigMap", "power-budget")["data"].__setitem__("notes", "password: hunter2"),
     "ConfigMap ecohash-system/power-budget: data.notes holds what looks like a credential"),
    (lambda o: find(o, "HelmChart", "gpu-operator")["spec"].__setitem__(
        "valuesContent", "ngc:\n  apiKey: nvapi-123\n"),
     "HelmChart kube-system/gpu-operator: spec.valuesContent holds what looks like a credential"),
    (lambda o: o.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hf-token", "namespace": "x"},
                         "data": {"token": "aGZfeHh4"}}),
     "Secret x/hf-token: a Secret with its values in the render: secrets are created out of band and only "
     "referenced"),
])
def test_credentials_in_plain_config_are_refused(site_render, tamper, expected):
    objects = copy.deepcopy(site_render[0])
    tamper(objects)
    assert messages(no_plain_secrets(objects)) == [expected]


def test_a_budget_that_differs_from_the_plan_is_refused(site_render):
    objects, plan = copy.deepcopy(site_render[0]), site_render[1]
    configmap = find(objects, "ConfigMap", "power-budget-c04")
    nodes = json.loads(configmap["data"]["nodes.json"])
    nodes[0]["gpu_cap_w"] += 50  # someone "helped" a node by hand
    configmap["data"]["nodes.json"] = json.dumps(nodes)
    assert messages(budget_matches_plan(objects, plan)) == [
        "ConfigMap power-budget: differs from `ecohash plan --json` in nodes"]


def test_a_missing_container_budget_is_refused(site_render):
    objects, plan = copy.deepcopy(site_render[0]), site_render[1]
    objects.remove(find(objects, "ConfigMap", "power-budget-c02"))
    assert messages(budget_matches_plan(objects, plan)) == [
        "ConfigMap power-budget-c02: missing: its container's nodes have no budget"]
