"""The budget's ConfigMaps: each under Kubernetes' 1 MiB, the site's not growing with nodes."""

from __future__ import annotations

import json

import pytest
from bench.sites import site_text

from ecohash.budget import compile_budget
from ecohash.errors import InvalidInputError
from ecohash.inventory import load_site_text
from ecohash.report import plan_data
from ecohash.stack.power import CONFIGMAP_LIMIT_BYTES, SITE_CONFIGMAP, split_plan
from tests.sitegen import C, R, S

SKUS = {"s8": ("g", 8, 2000)}
GPU_MODELS = {"g": (700, 200)}


def plan_of(text: str) -> dict:
    return plan_data(compile_budget(load_site_text(text, "site.yaml")))


def sizes(split: dict[str, dict[str, str]]) -> dict[str, int]:
    return {name: sum(len(v.encode()) for v in data.values()) for name, data in split.items()}


def site_of(racks: int, nodes_per_rack: int) -> str:
    rack = R(["s8"] * nodes_per_rack, power_kw="100")
    containers = [C([rack] * racks, "100000", "100000") for _ in range(3)]
    return S(containers, gpu_models=GPU_MODELS, skus=SKUS).yaml()


def test_the_site_configmap_names_the_containers_and_holds_no_racks_or_nodes():
    split = split_plan(plan_of(site_of(racks=2, nodes_per_rack=2)))
    site = json.loads(split[SITE_CONFIGMAP]["site.json"])
    assert site["containers"] == ["c1", "c2", "c3"]
    assert "nodes" not in site and "file" not in site
    container = json.loads(split["power-budget-c2"]["container.json"])
    assert container["name"] == "c2" and [r["name"] for r in container["racks"]] == ["r1", "r2"]
    assert [n["name"] for n in json.loads(split["power-budget-c2"]["nodes.json"])] == [
        "c2-r1-n1", "c2-r1-n2", "c2-r2-n1", "c2-r2-n2"]


def test_the_site_configmap_does_not_grow_with_racks_or_nodes():
    small = sizes(split_plan(plan_of(site_of(racks=1, nodes_per_rack=1))))
    large = sizes(split_plan(plan_of(site_of(racks=40, nodes_per_rack=10))))
    # The same three containers; only the site's figures have more digits.
    assert abs(large[SITE_CONFIGMAP] - small[SITE_CONFIGMAP]) < 32
    assert large["power-budget-c1"] > 100 * small["power-budget-c1"]


@pytest.mark.slow
def test_the_benchmarks_50000_node_site_fits_every_configmap():
    # Its racks alone once made the site's ConfigMap 1.1 MB, and render refused the site.
    split = split_plan(plan_of(site_text(50_000)))
    by_size = sizes(split)
    assert len(split) == 1 + 250
    assert max(by_size.values()) < CONFIGMAP_LIMIT_BYTES
    assert by_size[SITE_CONFIGMAP] < 8 * 1024  # a name per container


def test_a_container_too_large_for_its_configmap_is_refused_with_the_remedy():
    rack = R(["s8"] * 50, power_kw="1000")
    plan = plan_of(S([C([rack] * 120, "100000", "100000")], gpu_models=GPU_MODELS, skus=SKUS).yaml())
    with pytest.raises(InvalidInputError, match=r"^ConfigMap power-budget-c1 would hold \d+ bytes of "
                       r"budget, over Kubernetes' 1 MiB; split the container into smaller ones$"):
        split_plan(plan)


def test_a_site_with_more_containers_than_its_configmap_can_name_is_refused_as_such():
    name = "c" * 58
    containers = [{"name": f"{name}{i:03d}", "racks": []} for i in range(16_000)]
    plan = {"site": "t", "file": "site.yaml", "containers": containers, "nodes": []}
    with pytest.raises(InvalidInputError, match=r"^ConfigMap power-budget would hold \d+ bytes of budget, "
                       r"over Kubernetes' 1 MiB; the site has more containers \(16000\) than it can name$"):
        split_plan(plan)
