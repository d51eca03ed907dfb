"""spec.services: placement per container and the checks that need the whole site."""

from __future__ import annotations

import pytest

from ecohash.errors import InventoryError
from ecohash.inventory import load_site
from ecohash.inventory.services import place
from tests.conftest import EXAMPLE_SITE

# The example has one container of four 8-GPU H100 nodes; a second container of two
# 4-GPU L40S nodes makes placement choose.
TWO_CONTAINERS = EXAMPLE_SITE + """\
    - name: c02
      cooling: air
      power_kw: 100
      cooling_kw: 100
      racks:
        - name: r01
          nodes:
            - {name: "c02-r01-n{i:02d}", count: 2, sku: l40s-4, mgmt_ip: 10.20.2.11}
"""

SERVICE = """\
  services:
    - name: llama
      model: meta-llama/Llama-3.3-70B-Instruct
      gpu_model: h100-sxm
      gpus_per_replica: 4
      replicas: {min: 2, max: 8}
"""


def site_with(write_site, services: str = SERVICE, *replacements):
    return write_site(TWO_CONTAINERS + services, *replacements)


def problems(path) -> list[str]:
    with pytest.raises(InventoryError) as raised:
        load_site(path)
    return [f"{p.line}: {p.message}" for p in raised.value.problems]


def line_of(path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_a_service_is_placed_in_each_container_of_its_gpu_model(write_site):
    site = load_site(site_with(write_site))
    (service,) = site.services
    placements = place(service, site.nodes)
    assert [(p.container, p.skus, p.gpus) for p in placements] == [("c01", ("hgx-h100-8",), 32)]
    assert placements[0].replicas_that_fit(4) == 8


def test_gpus_are_counted_in_whole_replicas_per_node(write_site):
    # 8 GPUs per node hold two 3-GPU replicas: 6 usable GPUs a node, 24 in c01.
    site = load_site(site_with(write_site, SERVICE.replace("gpus_per_replica: 4", "gpus_per_replica: 3")))
    (placement,) = place(site.services[0], site.nodes)
    assert placement.gpus == 24


def test_skus_narrow_placement_and_must_match_the_gpu_model(write_site):
    path = site_with(write_site, SERVICE + "      placement: {skus: [l40s-4]}\n")
    assert problems(path) == [
        f"{line_of(path, 'skus: [l40s-4]')}: sku 'l40s-4' has l40s GPUs, not the service's h100-sxm"
    ]


@pytest.mark.parametrize(("change", "marker", "expected"), [
    (("gpus_per_replica: 4", "gpus_per_replica: 16"), "gpus_per_replica",
     "service 'llama': a replica needs 16 GPUs on one node; the largest h100-sxm node has 8"),
    (("gpu_model: h100-sxm", "gpu_model: h100-sxn"), "gpu_model: h100-sxn",
     "unknown gpu model 'h100-sxn' (did you mean 'h100-sxm'?)"),
    (("gpu_model: h100-sxm", "gpu_model: b200"), "gpu_model: b200",
     "service 'llama': a replica needs 4 GPUs on one node; the site has no b200 node"),
    (("{min: 2, max: 8}", "{min: 9, max: 8}"), "replicas:",
     "replicas.min 9 is above replicas.max 8"),
    (("{min: 2, max: 8}", "{min: 9, max: 12}"), "replicas:",
     "service 'llama': replicas.min 9 x 4 GPUs needs 36 h100-sxm GPUs in container c01, which has 32 for it"),
    (("replicas: {min: 2, max: 8}", "replicas: {min: 1}\n      placement: {containers: [c02]}"),
     "placement:", "service 'llama': container c02 has no h100-sxm node with 4 GPUs for a replica"),
    (("replicas: {min: 2, max: 8}", "placement: {containers: [c03]}"), "placement:",
     "unknown container 'c03' (did you mean 'c02'?)"),
])
def test_service_mistakes_are_reported_at_their_line(write_site, change, marker, expected):
    path = site_with(write_site, SERVICE, change)
    assert problems(path) == [f"{line_of(path, marker)}: {expected}"]


def test_services_together_must_fit_their_minimums_in_a_container(write_site):
    second = SERVICE.replace("  services:\n", "").replace("name: llama", "name: llama-b")
    path = site_with(write_site, SERVICE.replace("{min: 2, max: 8}", "{min: 5, max: 8}")
                     + second.replace("{min: 2, max: 8}", "{min: 4, max: 8}"))
    # 5 x 4 + 4 x 4 = 36 GPUs of minimums in c01's 32.
    assert problems(path) == [f"{line_of(path, '{min: 4, max: 8}')}: services' replicas.min need 36 h100-sxm "
                              "GPUs in container c01 together, which has 32"]


def test_duplicate_service_names_are_refused(write_site):
    path = site_with(write_site, SERVICE + SERVICE.replace("  services:\n", "").replace(
        "{min: 2, max: 8}", "{min: 1, max: 8}"))
    lines = [i for i, line in enumerate(path.read_text().splitlines(), 1) if "name: llama" in line]
    assert problems(path) == [f"{lines[1]}: duplicate service name 'llama' (also services[0])"]


def test_services_need_a_cluster(write_site):
    path = site_with(write_site, SERVICE, ("  kubernetes:\n    distribution: k3s\n    servers: [c01-r01-n01]\n", ""))
    assert problems(path) == [f"{line_of(path, 'services:')}: services need a spec.kubernetes cluster to run in"]


def test_a_token_value_has_no_place_in_the_inventory(write_site):
    # Only a reference to a Secret is accepted: a literal token is an unknown key.
    path = site_with(write_site, SERVICE + "      token: hf_abcdefghijklmnop\n")
    assert problems(path) == [f"{line_of(path, 'token: hf_')}: spec.services[0]: unknown key 'token'"]


def test_services_of_a_gpu_model_share_only_that_models_gpus(write_site):
    # c02 gets one 8-GPU H100 node beside its two 4-GPU L40S nodes: 16 GPUs, 8 of them H100.
    mixed = TWO_CONTAINERS + "            - {name: c02-r01-n03, sku: hgx-h100-8, mgmt_ip: 10.20.2.13}\n"
    second = SERVICE.replace("  services:\n", "").replace("name: llama", "name: llama-b").replace(
        "{min: 2, max: 8}", "{min: 1, max: 8}\n      placement: {containers: [c02]}")
    fits = write_site(mixed + SERVICE.replace("{min: 2, max: 8}", "{min: 1, max: 8}") + second)
    assert [p.container for p in place(load_site(fits).services[0], load_site(fits).nodes)] == ["c01", "c02"]
    # 2 x 4 + 1 x 4 = 12 H100 GPUs in c02, which has 8, though 16 GPUs in all.
    path = write_site(mixed + SERVICE + second)
    assert problems(path) == [f"{line_of(path, '{min: 1, max: 8}')}: services' replicas.min need 12 h100-sxm "
                              "GPUs in container c02 together, which has 8"]
