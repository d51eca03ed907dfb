"""Each component under Pulumi's mocks: what it declares, where, and what it exports."""

from __future__ import annotations

import pulumi
import pytest
import yaml

from ecohash.budget import compile_budget
from ecohash.errors import EcohashError, InvalidInputError
from ecohash.inventory import labels, load_site
from ecohash.inventory.services import place
from ecohash.report import plan_data
from ecohash.stack.cluster import SiteCluster, SiteClusterArgs
from ecohash.stack.container import GpuContainer, GpuContainerArgs
from ecohash.stack.inference import InferenceService, InferenceServiceArgs
from ecohash.stack.names import container_namespace
from ecohash.stack.operator import GpuOperator, GpuOperatorArgs
from ecohash.stack.power import PowerBudget, PowerBudgetArgs, exporter_source
from ecohash.stack.program import declare_site, read_kubeconfig, site_program
from ecohash.standard import load_standard
from tests.conftest import EXAMPLE_SITE
from tests.stack.conftest import parent_type, settle

SERVICE = """\
  services:
    - name: llama
      model: meta-llama/Llama-3.3-70B-Instruct
      gpu_model: h100-sxm
      gpus_per_replica: 4
      replicas: {min: 2, max: 6}
      token_secret: {name: hf-token, key: hf}
      load_timeout_s: 1205
      shm_gib: 8
"""
IMAGE = "registry.example:5000/vllm/vllm-openai@sha256:" + "0" * 64


@pytest.fixture
def site(write_site):
    return load_site(write_site(EXAMPLE_SITE + SERVICE))


def children_of(recorder, component_type: str):
    return [r for r in recorder.resources if parent_type(r) == component_type]


def test_site_cluster_makes_a_provider_and_its_namespaces(pulumi_mocks):
    SiteCluster("tx", SiteClusterArgs(site="tx", kubeconfig=pulumi.Output.secret("apiVersion: v1")))
    settle()
    (provider,) = [r for r in pulumi_mocks.resources if r.type == "pulumi:providers:kubernetes"]
    assert provider.inputs["enableServerSideApply"] in ("true", True)
    # Sorted: the mock monitor records registrations as Pulumi's event loop completes them,
    # not in declaration order (this failed about one run in four of tests/stack).
    names = sorted(r.inputs["metadata"]["name"] for r in pulumi_mocks.kubernetes("Namespace"))
    assert names == ["ecohash-system", "gpu-operator"]
    # Every namespace is the component's child and goes through the site's provider.
    for namespace in pulumi_mocks.kubernetes("Namespace"):
        assert parent_type(namespace) == "ecohash:cluster:SiteCluster"
        assert "pulumi:providers:kubernetes::tx-kubernetes" in namespace.provider


def test_gpu_container_quota_is_its_gpu_count(pulumi_mocks):
    container = GpuContainer("c01", GpuContainerArgs(site="tx", container="c01", cooling="hydro", gpus=768))
    settle()
    quota = pulumi_mocks.one("ResourceQuota", "gpus")
    assert quota["metadata"]["namespace"] == "ecohash-c01"
    assert quota["spec"]["hard"] == {"requests.nvidia.com/gpu": "768"}
    namespace = pulumi_mocks.one("Namespace", "ecohash-c01")
    assert namespace["metadata"]["labels"][labels.CONTAINER] == "c01"
    assert namespace["metadata"]["labels"][labels.COOLING] == "hydro"
    assert {parent_type(r) for r in pulumi_mocks.kubernetes()} == {"ecohash:container:GpuContainer"}
    assert container.node_selector == {labels.SITE: "tx", labels.CONTAINER: "c01"}


def test_power_budget_splits_the_plan_per_container_and_mounts_it_all(pulumi_mocks, site):
    plan = plan_data(compile_budget(site))
    PowerBudget("power", PowerBudgetArgs(site=site.name, plan=plan, image=IMAGE))
    settle()
    site_json = yaml.safe_load(pulumi_mocks.one("ConfigMap", "power-budget")["data"]["site.json"])
    assert "nodes" not in site_json and site_json["it_budget_kw"] == plan["it_budget_kw"]
    assert site_json["containers"] == ["c01"]  # names only: racks and nodes are the container's
    container_data = pulumi_mocks.one("ConfigMap", "power-budget-c01")["data"]
    assert yaml.safe_load(container_data["container.json"]) == plan["containers"][0]
    nodes = yaml.safe_load(container_data["nodes.json"])
    assert [n["gpu_cap_w"] for n in nodes] == [n["gpu_cap_w"] for n in plan["nodes"]]
    source = pulumi_mocks.one("ConfigMap", "power-exporter")["data"]["power_exporter.py"]
    assert source == exporter_source()
    pod = pulumi_mocks.one("DaemonSet", "power-exporter")["spec"]["template"]
    mounted = [s["configMap"]["items"][0]["path"] for s in pod["spec"]["volumes"][0]["projected"]["sources"]]
    assert mounted == ["site.json", "nodes/c01.json"]
    (container,) = pod["spec"]["containers"]
    assert container["image"] == IMAGE
    assert "nvidia.com/gpu" not in container["resources"]["requests"]  # it takes no GPU
    env = {e["name"]: e for e in container["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"


def test_gpu_operator_leaves_driver_and_toolkit_to_ansible(pulumi_mocks):
    chart = load_standard().gpu_operator
    GpuOperator("gpu-operator", GpuOperatorArgs(site="tx", chart=chart, mirror_url=None))
    settle()
    helm_chart = pulumi_mocks.one("HelmChart", "gpu-operator")
    spec = helm_chart["spec"]
    assert (spec["chart"], spec["repo"], spec["version"]) == (chart.chart, chart.repo, chart.version)
    values = yaml.safe_load(spec["valuesContent"])
    assert values["driver"]["enabled"] is False
    assert values["toolkit"]["enabled"] is False
    assert values["dcgmExporter"]["enabled"] is True
    assert values["operator"]["upgradeCRD"] is True
    assert pulumi_mocks.one("RuntimeClass", "nvidia")["handler"] == "nvidia"


def test_gpu_operator_comes_from_the_site_mirror_when_there_is_one(pulumi_mocks):
    chart = load_standard().gpu_operator
    GpuOperator("gpu-operator", GpuOperatorArgs(site="tx", chart=chart,
                                                           mirror_url="http://10.0.0.5:8080"))
    settle()
    spec = pulumi_mocks.one("HelmChart", "gpu-operator")["spec"]
    assert spec["chart"] == (f"http://10.0.0.5:8080/files/gpu-operator/{chart.version}/"
                             f"gpu-operator-{chart.version}.tgz")
    assert "repo" not in spec


def test_inference_service_is_sized_from_the_inventory(pulumi_mocks, site):
    (service,) = site.services
    (placement,) = place(service, site.nodes)
    InferenceService("llama-c01", InferenceServiceArgs(
        site=site.name, service=service, placement=placement, namespace="ecohash-c01", image=IMAGE))
    settle()
    deployment = pulumi_mocks.one("Deployment", "llama")
    assert "replicas" not in deployment["spec"]  # the autoscaler owns it
    pod = deployment["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {labels.CONTAINER: "c01", labels.GPU_MODEL: "h100-sxm"}
    (term,) = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"]
    assert term["matchExpressions"] == [{"key": labels.SKU, "operator": "In", "values": ["hgx-h100-8"]}]
    (vllm,) = pod["containers"]
    assert vllm["image"] == IMAGE
    assert vllm["resources"]["limits"] == {"nvidia.com/gpu": "4", "memory": "136Gi"}  # 4 x 32 + 8
    assert vllm["resources"]["requests"]["nvidia.com/gpu"] == "4"
    assert vllm["args"][vllm["args"].index("--tensor-parallel-size") + 1] == "4"
    # The startup probe waits out the whole load timeout: ceil(1205 / 10) x 10 s.
    assert vllm["startupProbe"]["failureThreshold"] * vllm["startupProbe"]["periodSeconds"] >= 1205
    token = next(e for e in vllm["env"] if e["name"] == "HF_TOKEN")
    assert token == {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "hf"}}}
    shm = next(v for v in pod["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": "8Gi"}
    autoscaler = pulumi_mocks.one("HorizontalPodAutoscaler", "llama")["spec"]
    assert (autoscaler["minReplicas"], autoscaler["maxReplicas"]) == (2, 6)
    assert autoscaler["metrics"][0]["pods"]["metric"]["name"] == "vllm_num_requests_waiting"
    assert pulumi_mocks.one("PodDisruptionBudget", "llama")["spec"]["maxUnavailable"] == 1
    assert pulumi_mocks.one("Service", "llama")["spec"]["ports"][0]["port"] == 8000
    assert {parent_type(r) for r in pulumi_mocks.kubernetes()} == {"ecohash:inference:InferenceService"}


def test_the_site_program_puts_every_object_under_a_component_and_the_site_provider(pulumi_mocks, site):
    declare_site(site, load_standard(), compile_budget(site), kubeconfig=None)
    settle()
    objects = pulumi_mocks.kubernetes()
    assert objects
    for obj in objects:
        assert parent_type(obj).startswith("ecohash:"), obj.name
        assert f"pulumi:providers:kubernetes::{site.name}-kubernetes" in obj.provider
    component_types = {r.type for r in pulumi_mocks.resources if r.type.startswith("ecohash:")}
    assert component_types == {"ecohash:cluster:SiteCluster", "ecohash:container:GpuContainer",
                               "ecohash:power:PowerBudget", "ecohash:operator:GpuOperator",
                               "ecohash:inference:InferenceService"}



def test_the_program_finds_a_site_named_by_its_stack_from_any_directory(pulumi_mocks, tmp_path, monkeypatch):
    # The Pulumi CLI runs stacks/__main__.py from stacks/, where ./inventories is not the checkout's.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ECOHASH_STATE_DIR", str(tmp_path / "state"))
    stack = site_program("nd-williston", offline=True)
    settle()
    assert set(stack.containers) == {"c01", "c02"}
    assert {s.inputs["metadata"]["name"] for s in pulumi_mocks.kubernetes("Deployment")} == {"mistral-small"}


def test_apply_never_falls_back_to_the_users_kubeconfig(tmp_path, monkeypatch, site):
    monkeypatch.setenv("ECOHASH_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "laptop-kubeconfig"))
    with pytest.raises(EcohashError) as raised:
        read_kubeconfig(site)
    assert str(raised.value).startswith(
        f"site tx-odessa: cannot read its kubeconfig {tmp_path}/state/secrets/tx-odessa/kubeconfig")


def test_a_container_cannot_take_a_namespace_ecohash_keeps():
    with pytest.raises(InvalidInputError, match="'ecohash-system' is the one ecohash keeps for itself"):
        container_namespace("system")
    assert container_namespace("c01") == "ecohash-c01"
