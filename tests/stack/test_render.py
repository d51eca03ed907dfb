"""`ecohash render` on the example sites: strict-valid, deterministic, true to the inventory."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ecohash.errors import EcohashError, InvalidInputError
from ecohash.inventory import labels, load_site
from ecohash.inventory.services import place
from ecohash.stack.render import (
    RENDER_MARKER,
    RenderCheckError,
    _Dumper,
    _emitters_agree,
    bundled_crds,
    checked_render,
    file_name,
    render_site,
    to_yaml,
    write_render,
)
from ecohash.stack.validation import validate_manifests
from ecohash.standard import kubernetes_minor, load_standard, standard_file_of
from tests.conftest import REPO

EXAMPLES = sorted(p.parent.name for p in (REPO / "inventories").glob("*/site.yaml"))
ECOHASH = [sys.executable, "-m", "ecohash"]


def rendered(name: str):
    site = load_site(REPO / "inventories" / name / "site.yaml")
    standard = load_standard(standard_file_of(site))
    return site, standard, checked_render(site, standard)


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_object_is_strict_valid_for_the_standards_kubernetes(name):
    site, standard, render = rendered(name)
    assert kubernetes_minor(standard) == "1.35"
    assert validate_manifests(render.objects, "1.35", crds=bundled_crds()) == []
    kinds = {o["kind"] for o in render.objects}
    assert {"Namespace", "ResourceQuota", "ConfigMap", "DaemonSet", "HelmChart", "Deployment",
            "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service"} <= kinds


@pytest.mark.parametrize("name", EXAMPLES)
def test_gpu_requests_and_node_selectors_match_the_inventory(name):
    site, _, render = rendered(name)
    deployments = {(o["metadata"]["namespace"], o["metadata"]["name"]): o
                   for o in render.objects if o["kind"] == "Deployment"}
    autoscalers = {(o["metadata"]["namespace"], o["metadata"]["name"]): o["spec"]
                   for o in render.objects if o["kind"] == "HorizontalPodAutoscaler"}
    expected = set()
    for service in site.services:
        for placement in place(service, site.nodes):
            key = (f"ecohash-{placement.container}", service.name)
            expected.add(key)
            pod = deployments[key]["spec"]["template"]["spec"]
            (container,) = pod["containers"]
            gpus = str(service.gpus_per_replica)
            assert container["resources"]["limits"]["nvidia.com/gpu"] == gpus
            assert container["resources"]["requests"]["nvidia.com/gpu"] == gpus
            assert pod["nodeSelector"] == {labels.CONTAINER: placement.container,
                                           labels.GPU_MODEL: service.gpu_model}
            # Every node the selector and affinity admit holds a replica, and all such nodes are admitted.
            (term,) = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
                "nodeSelectorTerms"]
            skus = set(term["matchExpressions"][0]["values"])
            admitted = [n for n in site.nodes if n.container == placement.container
                        and n.sku.gpu == service.gpu_model and n.sku_name in skus]
            assert admitted and all(n.gpus >= service.gpus_per_replica for n in admitted)
            assert (autoscalers[key]["minReplicas"], autoscalers[key]["maxReplicas"]) == (
                service.replicas.min, service.replicas.max)
    assert set(deployments) == expected
    # Each container's quota is its GPU count, from the inventory.
    for quota in (o for o in render.objects if o["kind"] == "ResourceQuota"):
        container = quota["metadata"]["namespace"].removeprefix("ecohash-")
        gpus = sum(n.gpus for n in site.nodes if n.container == container)
        assert quota["spec"]["hard"] == {"requests.nvidia.com/gpu": str(gpus)}


@pytest.mark.parametrize("name", EXAMPLES)
def test_budget_configmaps_are_ecohash_plan_json(name, tmp_path):
    plan = json.loads(subprocess.run([*ECOHASH, "plan", name, "--json"], cwd=REPO, check=True,
                                     capture_output=True, text=True).stdout)
    site, _, render = rendered(name)
    configmaps = {o["metadata"]["name"]: o["data"] for o in render.objects if o["kind"] == "ConfigMap"}
    rebuilt = json.loads(configmaps["power-budget"]["site.json"])
    names = rebuilt["containers"]
    rebuilt["containers"] = [json.loads(configmaps[f"power-budget-{c}"]["container.json"]) for c in names]
    rebuilt["nodes"] = [node for c in names for node in json.loads(configmaps[f"power-budget-{c}"]["nodes.json"])]
    # All of it but the site file's path, which depends on how the plan was run, and the
    # output's schema stamp (docs/json.md), which belongs to the command's output, not the stack.
    assert plan.pop("file") == f"inventories/{name}/site.yaml"
    assert plan.pop("schema") == "ecohash.plan/2"
    assert rebuilt == plan


@pytest.mark.slow
def test_render_is_byte_identical_across_runs_hash_seeds_and_directories(tmp_path):
    outputs = []
    # By name from the checkout, by absolute path from elsewhere, with other hash seeds.
    for seed, cwd, site in (("0", REPO, "tx-odessa"), ("12345", tmp_path, str(REPO / "inventories/tx-odessa"))):
        out = tmp_path / f"out-{seed}"
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run([*ECOHASH, "render", site, "-o", str(out)], cwd=cwd, env=env, check=True,
                       capture_output=True)
        outputs.append({str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()})
    assert outputs[0] == outputs[1]
    assert RENDER_MARKER in outputs[0]
    assert len(outputs[0]) == 40 + 1  # every object, and the marker


def big_site(nodes_per_container: int) -> str:
    """Four containers of 8-GPU nodes, with the same two services whatever the size."""
    lines = ["apiVersion: ecohash.io/v1", "kind: Site", "metadata: {name: big}", "spec:",
             "  power: {grid_mw: 1000, pue: 1.2}", "  network: {mgmt_cidr: 10.0.0.0/8}",
             "  kubernetes: {servers: [c1-n00001]}", "  containers:"]
    for c in range(1, 5):
        lines += [f"    - name: c{c}", "      cooling: hydro", "      power_kw: 100000", "      cooling_kw: 100000",
                  f"      racks: [{{name: r1, nodes: [{{name: 'c{c}-n{{i:05d}}', count: {nodes_per_container}, "
                  f"sku: hgx-h100-8, mgmt_ip: 10.{c}.0.1}}]}}]"]
    lines += ["  services:",
              "    - {name: llama, model: meta-llama/Llama-3.3-70B-Instruct, gpu_model: h100-sxm,",
              "       gpus_per_replica: 4, replicas: {min: 1, max: 8}}",
              "    - {name: qwen, model: Qwen/Qwen2.5-7B-Instruct, gpu_model: h100-sxm, gpus_per_replica: 1,",
              "       placement: {containers: [c2]}}"]
    return "\n".join(lines) + "\n"


def test_object_count_does_not_grow_with_nodes(tmp_path):
    counts = {}
    for nodes in (25, 2500):  # 100 and 10,000 nodes
        path = tmp_path / f"site-{nodes}.yaml"
        path.write_text(big_site(nodes))
        site = load_site(path)
        assert len(site.nodes) == 4 * nodes
        render = checked_render(site, load_standard())
        counts[nodes] = sorted((o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
                               for o in render.objects)
    assert counts[25] == counts[2500]
    # 6 namespaces, 4 quotas, 6 ConfigMaps, the exporter's DaemonSet and Service, the
    # RuntimeClass and HelmChart, and 4 objects for each of 5 service placements.
    assert len(counts[25]) == 40


def test_a_failed_check_writes_nothing_and_names_the_object(tmp_path, monkeypatch):
    site = load_site(REPO / "inventories/nd-williston/site.yaml")
    out = tmp_path / "rendered"
    write_render(checked_render(site, load_standard()), out)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    # A slip in the component: the GPU limit left out.
    from ecohash.stack import inference
    original = inference.k8s.core.v1.ResourceRequirementsArgs

    def without_gpu_limit(requests, limits):
        return original(requests=requests, limits={k: v for k, v in limits.items() if k != "nvidia.com/gpu"})

    monkeypatch.setattr(inference.k8s.core.v1, "ResourceRequirementsArgs", without_gpu_limit)
    with pytest.raises(RenderCheckError) as raised:
        write_render(checked_render(site, load_standard()), out)
    assert "Deployment ecohash-c01/mistral-small: container vllm requests nvidia.com/gpu without a limit" \
        in str(raised.value)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_a_rerender_replaces_the_directory_whole(tmp_path):
    site = load_site(REPO / "inventories/nd-williston/site.yaml")
    out = tmp_path / "rendered"
    write_render(render_site(site, load_standard()), out)
    assert (out / RENDER_MARKER).read_text().endswith("\nsite: nd-williston\n")
    stale = out / "ecohash-c09" / "deployment-gone.yaml"
    stale.parent.mkdir(parents=True)
    stale.write_text("kind: Deployment\n")
    files = write_render(render_site(site, load_standard()), out)
    assert not stale.exists()
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.yaml")) == files
    assert RENDER_MARKER not in files
    assert [p.name for p in tmp_path.iterdir()] == ["rendered"]  # no staging left behind


def test_an_empty_directory_is_replaced(tmp_path):
    site = load_site(REPO / "inventories/nd-williston/site.yaml")
    (tmp_path / "rendered").mkdir()
    files = write_render(render_site(site, load_standard()), tmp_path / "rendered")
    assert len(files) == 22


@pytest.mark.parametrize("content", ["file", "hidden file", "marker folder"])
def test_a_directory_ecohash_did_not_render_is_refused_untouched(tmp_path, content):
    site = load_site(REPO / "inventories/nd-williston/site.yaml")
    out = tmp_path / "notes"
    out.mkdir()
    mine = out / {"file": "todo.txt", "hidden file": ".env", "marker folder": RENDER_MARKER}[content]
    if content == "marker folder":
        mine.mkdir()  # only a file of that name marks a render
    else:
        mine.write_text("mine\n")
    with pytest.raises(InvalidInputError) as raised:
        write_render(render_site(site, load_standard()), out)
    assert str(raised.value) == (
        f"{out}: not empty and not written by ecohash (no {RENDER_MARKER} in it); "
        "refusing to replace it: remove it or choose another directory")
    assert [p.name for p in out.iterdir()] == [mine.name]
    assert [p.name for p in tmp_path.iterdir()] == ["notes"]


def test_a_file_where_the_directory_belongs_is_refused(tmp_path):
    site = load_site(REPO / "inventories/nd-williston/site.yaml")
    out = tmp_path / "rendered"
    out.write_text("mine\n")
    with pytest.raises(InvalidInputError, match="not a directory"):
        write_render(render_site(site, load_standard()), out)
    assert out.read_text() == "mine\n"


@pytest.mark.parametrize("target", ["a render", "someone's folder"])
def test_a_symlinked_directory_is_refused_and_never_followed(tmp_path, target):
    site = load_site(REPO / "inventories/nd-williston/site.yaml")
    real = tmp_path / "real"
    if target == "a render":
        write_render(render_site(site, load_standard()), real)
    else:
        real.mkdir()
        (real / "todo.txt").write_text("mine\n")
    before = {p: p.read_bytes() for p in real.rglob("*") if p.is_file()}
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(InvalidInputError) as raised:
        write_render(render_site(site, load_standard()), link)
    assert str(raised.value) == (
        f"{link}: a symbolic link; ecohash writes into a real directory, never through a link")
    assert link.is_symlink() and link.readlink() == real
    assert {p: p.read_bytes() for p in real.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]


def test_leftovers_of_an_interrupted_render_are_cleaned_by_the_next(tmp_path):
    # Killed between its steps, a render leaves its staging folder, or the old render
    # moved aside under .NAME.previous (with or without the new one in place).
    site = load_site(REPO / "inventories/nd-williston/site.yaml")
    out = tmp_path / "rendered"
    write_render(render_site(site, load_standard()), out)
    previous = tmp_path / ".rendered.previous"
    shutil.copytree(out, previous)
    staging = tmp_path / ".rendered.writing-k1ll3d"
    shutil.copytree(out, staging)
    (tmp_path / ".rendered.writing-empty").mkdir()
    files = write_render(render_site(site, load_standard()), out)
    assert len(files) == 22
    assert [p.name for p in tmp_path.iterdir()] == ["rendered"]

    os.rename(out, previous)  # killed after moving the old render aside, before the new one
    files = write_render(render_site(site, load_standard()), out)
    assert len(files) == 22
    assert [p.name for p in tmp_path.iterdir()] == ["rendered"]


def test_a_failed_swap_puts_the_old_render_back_and_says_so_in_one_line(tmp_path, monkeypatch):
    import ecohash.atomic

    site = load_site(REPO / "inventories/nd-williston/site.yaml")
    out = tmp_path / "rendered"
    write_render(render_site(site, load_standard()), out)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    real_replace = os.replace

    def failing_move_in(source, target):
        if ".writing-" in str(source):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_replace(source, target)

    monkeypatch.setattr(ecohash.atomic.os, "replace", failing_move_in)
    with pytest.raises(EcohashError) as raised:
        write_render(render_site(site, load_standard()), out)
    assert str(raised.value) == f"{out}: cannot write: No space left on device"
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["rendered"]


def test_leftovers_do_not_break_the_rollout_record_of_the_stack(tmp_path, monkeypatch):
    # provision keeps each rollout's render in the state directory, replaced every run.
    from ecohash.rollout.changes import record_stack
    from ecohash.rollout.state import RolloutState

    monkeypatch.setenv("ECOHASH_STATE_DIR", str(tmp_path / "state"))
    site = load_site(REPO / "inventories/nd-williston/site.yaml")
    render = checked_render(site, load_standard())
    state = RolloutState(site.name)
    record_stack(state, render, "rendered", "no pulumi CLI", "run-1")
    stack_dir = RolloutState.stack_dir_for(site.name)
    shutil.copytree(stack_dir, stack_dir.with_name(".stack.previous"))
    shutil.copytree(stack_dir, stack_dir.with_name(".stack.writing-k1ll3d"))
    record_stack(state, render, "rendered", "no pulumi CLI", "run-2")
    assert sorted(p.name for p in stack_dir.parent.iterdir()) == ["stack"]
    assert sorted(str(p.relative_to(stack_dir)) for p in stack_dir.rglob("*.yaml")) == sorted(render.files())


def test_multi_line_values_are_literal_blocks_for_line_diffs(tmp_path):
    site = load_site(REPO / "inventories/nd-williston/site.yaml")
    files = render_site(site, load_standard()).files()
    text = files["kube-system/helmchart-gpu-operator.yaml"]
    assert "  valuesContent: |\n    dcgm:\n" in text
    assert yaml.safe_load(yaml.safe_load(text)["spec"]["valuesContent"])["driver"] == {"enabled": False}


# Characters where libyaml's and PyYAML's emitters could part: quotes, indicators, line
# breaks and spaces around them, tabs, controls, NEL, beyond U+FFFF; and long lines.
_TRICKY = st.text(st.sampled_from(list(" \n\t:#-'\"{}[]&*!|>%@`\\?,.~=01aé\x00\x85\u2028😀")), max_size=12)
_TEXT = _TRICKY | st.builds(lambda part, times: part * times, _TRICKY, st.integers(1, 150))
_YAML_VALUES = st.recursive(
    _TEXT | st.none() | st.booleans() | st.integers() | st.floats(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_TEXT, children, max_size=3),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(_TEXT, _YAML_VALUES, min_size=1, max_size=4))
@pytest.mark.slow
def test_yaml_is_what_pyyamls_emitter_writes_whichever_emitter_wrote_it(obj):
    assert to_yaml(obj) == yaml.dump(obj, Dumper=_Dumper, sort_keys=True, default_flow_style=False,
                                     allow_unicode=True, width=1000)


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_object_of_a_render_is_written_by_libyaml(name):
    # What keeps a 10,000-node render in seconds: its budgets are 100s of KB of literal text.
    _, _, render = rendered(name)
    assert [file_name(o) for o in render.objects if not _emitters_agree(o)] == []
