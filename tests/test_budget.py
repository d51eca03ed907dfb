"""The budget rule on cases computed by hand."""

from fractions import Fraction

import pytest

from ecohash.budget import compile_budget, it_budget_w, largest_cap
from ecohash.errors import InfeasibleSiteError
from ecohash.inventory import load_site_text
from tests.sitegen import C, R, S

# A 4-GPU, 1000 W-host node of a 500 W GPU (min 100 W): 3000 W at TDP.
GPU = {"g500": (500, 100), "g300": (300, 150)}
SKUS = {"n4": ("g500", 4, 1000), "l4": ("g300", 4, 500), "cpu": (None, 0, 400)}


def plan(site: S):
    return compile_budget(load_site_text(site.yaml(), "t.yaml"))


def caps(compiled):
    return {n.node.name: (n.gpu_cap_w, n.capped_by) for n in compiled.nodes}


def test_nothing_binds_and_every_gpu_runs_at_tdp():
    compiled = plan(S([C([R(["n4", "n4"], "6")])], gpu_models=GPU, skus=SKUS))
    assert set(caps(compiled).values()) == {(500, None)}
    assert compiled.racks[0].cap_w is None and compiled.racks[0].draw_w == 6000


def test_binding_rack():
    # 2 nodes: hosts 2000 W, 8 GPUs; 5000 W budget -> W = (5000 - 2000) / 8 = 375.
    compiled = plan(S([C([R(["n4", "n4"], "5"), R(["n4"])])], gpu_models=GPU, skus=SKUS))
    assert caps(compiled) == {
        "c1-r1-n1": (375, "rack c1/r1"), "c1-r1-n2": (375, "rack c1/r1"), "c1-r2-n1": (500, None),
    }
    assert compiled.racks[0].cap_w == 375 and compiled.racks[0].draw_w == 5000


def test_binding_container_uses_min_of_power_and_cooling():
    # 3 nodes: hosts 3000 W, 12 GPUs; min(9, 7.5) kW -> W = floor(4500 / 12) = 375.
    compiled = plan(S([C([R(["n4", "n4", "n4"])], power_kw="9", cooling_kw="7.5")],
                      gpu_models=GPU, skus=SKUS))
    assert set(caps(compiled).values()) == {(375, "container c1")}
    assert compiled.containers[0].budget_w == 7500


def test_binding_site_with_exact_fractional_budget():
    # 0.01 MW x (1 - 3.3%) / 1.07 = 9037.38... W; 6 hosts 6000 W, 24 GPUs -> floor(3037.38/24) = 126.
    site = S([C([R(["n4", "n4", "n4"])]), C([R(["n4", "n4", "n4"])])],
             grid_mw="0.01", reserve_pct="3.3", pue="1.07", gpu_models=GPU, skus=SKUS)
    compiled = plan(site)
    assert compiled.site_domain.budget_w == Fraction(10_000) * Fraction(967, 1000) / Fraction(107, 100)
    assert set(caps(compiled).values()) == {(126, "site t")}


def test_mixed_models_in_one_rack_cap_the_highest_ceilings_first():
    # n4 (500 W GPUs, host 1000) + l4 (300 W GPUs, host 500); budget 3.9 kW.
    # At W >= 300: 1500 + 4 x 300 + 4 x W <= 3900 -> W = 300. Both end at 300 W,
    # the L40S-like node only because its TDP is 300: it is not capped.
    compiled = plan(S([C([R(["n4", "l4"], "3.9")])], gpu_models=GPU, skus=SKUS))
    assert caps(compiled) == {"c1-r1-n1": (300, "rack c1/r1"), "c1-r1-n2": (300, None)}
    # Budget 3.5 kW: W falls below 300 and both models share it: 1500 + 8 x W <= 3500 -> 250.
    compiled = plan(S([C([R(["n4", "l4"], "3.5")])], gpu_models=GPU, skus=SKUS))
    assert caps(compiled) == {"c1-r1-n1": (250, "rack c1/r1"), "c1-r1-n2": (250, "rack c1/r1")}


def test_site_lowers_caps_a_rack_already_set():
    # Rack caps to 375 (as above); the site then allows 0.0045 MW: hosts 2000, 8 GPUs -> 312.
    compiled = plan(S([C([R(["n4", "n4"], "5")])], grid_mw="0.0045", gpu_models=GPU, skus=SKUS))
    assert set(caps(compiled).values()) == {(312, "site t")}


def test_cpu_only_nodes_count_their_host_power_and_have_no_cap():
    compiled = plan(S([C([R(["cpu", "n4"], "3")])], gpu_models=GPU, skus=SKUS))
    assert caps(compiled) == {"c1-r1-n1": (None, None), "c1-r1-n2": (400, "rack c1/r1")}


def test_cap_below_min_is_infeasible_and_names_the_domain():
    # 2 nodes need 2000 + 8 x 100 = 2800 W at the lowest caps; the rack has 2.5 kW.
    with pytest.raises(InfeasibleSiteError) as raised:
        plan(S([C([R(["n4", "n4"], "2.5")])], gpu_models=GPU, skus=SKUS))
    (problem,) = raised.value.problems
    assert problem.message == (
        "rack c1/r1 is infeasible: budget 2.500 kW, but its 2 nodes need 2.800 kW even at the "
        "lowest settable GPU caps (hosts alone 2.000 kW)"
    )
    assert problem.line == 20  # the rack's entry in the generated file


def test_hosts_alone_over_budget_is_infeasible():
    with pytest.raises(InfeasibleSiteError, match="container c1 is infeasible: budget 1.500 kW"):
        plan(S([C([R(["n4", "n4"])], power_kw="1.5")], gpu_models=GPU, skus=SKUS))


def test_every_infeasible_domain_is_reported_in_one_run():
    site = S([C([R(["n4", "n4"], "2.5")]), C([R(["n4"])], power_kw="1")], gpu_models=GPU, skus=SKUS)
    with pytest.raises(InfeasibleSiteError) as raised:
        plan(site)
    assert [p.message.split(" is ")[0] for p in raised.value.problems] == ["rack c1/r1", "container c2"]


def test_it_budget_formula_on_the_issue_example(write_site):
    site = load_site_text(write_site().read_text(), "x")
    assert it_budget_w(site) == 9_500_000


@pytest.mark.parametrize(
    ("hosts", "gpus_by_ceiling", "budget", "expected"),
    [
        (0, {500: 4}, 1000, 250),
        (100, {500: 4}, 99, None),
        (0, {300: 4, 500: 4}, 3200, 500),  # fits at ceilings: the highest ceiling
        (0, {300: 4, 500: 4}, 3199, 499),
        (0, {300: 4, 500: 4}, 2399, 299),
        (1000, {300: 2, 700: 8}, 1000, 0),
    ],
)
def test_largest_cap(hosts, gpus_by_ceiling, budget, expected):
    assert largest_cap(hosts, gpus_by_ceiling, budget) == expected
