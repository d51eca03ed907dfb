"""The budget rule on cases computed by hand."""

from fractions import Fraction
from pathlib import Path

import pytest

from ecohash.budget import compile_budget, it_budget_w, largest_cap
from ecohash.errors import InfeasibleSiteError
from ecohash.inventory import load_site, load_site_text
from ecohash.report import plan_data
from tests.sitegen import C, R, S

INVENTORIES = Path(__file__).resolve().parents[1] / "inventories"

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


# H100-like (700 W, floor 200 W) beside L40S-like (350 W, floor 100 W), 8 GPUs each;
# hosts 2000 + 1000 W. Every GPU at its floor: 3000 + 8 x 200 + 8 x 100 = 5400 W.
MIXED_GPU = {"h100": (700, 200), "l40s": (350, 100)}
MIXED_SKUS = {"h8": ("h100", 8, 2000), "l8": ("l40s", 8, 1000)}


def test_mixed_domain_holds_a_gpu_at_its_floor_and_lowers_the_others():
    # Budget 5.8 kW. One W for all: 3000 + 16 x W <= 5800 -> 175 W, below the H100's
    # 200 W floor (the old rule called this infeasible). Amended: for W in [100, 200] the
    # H100s stay at 200, so 3000 + 8 x 200 + 8 x W <= 5800 -> W = 150.
    compiled = plan(S([C([R(["h8", "l8"], "5.8")])], gpu_models=MIXED_GPU, skus=MIXED_SKUS))
    assert caps(compiled) == {"c1-r1-n1": (200, "rack c1/r1"), "c1-r1-n2": (150, "rack c1/r1")}
    assert compiled.racks[0].cap_w == 150
    assert compiled.racks[0].draw_w == 2000 + 8 * 200 + 1000 + 8 * 150 == 5800


def test_mixed_domain_exactly_at_its_floors_is_feasible():
    compiled = plan(S([C([R(["h8", "l8"], "5.4")])], gpu_models=MIXED_GPU, skus=MIXED_SKUS))
    assert caps(compiled) == {"c1-r1-n1": (200, "rack c1/r1"), "c1-r1-n2": (100, "rack c1/r1")}


@pytest.mark.parametrize(
    ("site", "message", "line"),
    [
        # 2 nodes need 2000 + 8 x 100 = 2800 W at the lowest caps; the rack has 2.5 kW.
        (S([C([R(["n4", "n4"], "2.5")])], gpu_models=GPU, skus=SKUS),
         "rack c1/r1 is infeasible: budget 2.500 kW, but its 2 nodes need 2.800 kW even at the "
         "lowest settable GPU caps (hosts alone 2.000 kW)", 20),
        # Mixed: every GPU at its floor needs 5400 W, one watt over 5.399 kW.
        (S([C([R(["h8", "l8"], "5.399")])], gpu_models=MIXED_GPU, skus=MIXED_SKUS),
         "rack c1/r1 is infeasible: budget 5.399 kW, but its 2 nodes need 5.400 kW even at the "
         "lowest settable GPU caps (hosts alone 3.000 kW)", 19),
    ],
    ids=["one-model", "mixed"],
)
def test_infeasible_below_the_floors_names_the_domain_and_its_need(site, message, line):
    with pytest.raises(InfeasibleSiteError) as raised:
        plan(site)
    (problem,) = raised.value.problems
    assert problem.message == message
    assert problem.line == line  # the rack's entry in the generated file


def test_a_later_domain_lowers_only_the_gpus_above_their_floor():
    # The site lowers the L40S-like GPUs further and leaves the H100-like ones at the
    # floor where the rack put them. Rack (5.8 kW) as above:
    # H100 200, L40S 150. Site 5.6 kW: 3000 + 8 x 200 + 8 x W <= 5600 -> W = 125.
    compiled = plan(S([C([R(["h8", "l8"], "5.8")])], grid_mw="0.0056",
                      gpu_models=MIXED_GPU, skus=MIXED_SKUS))
    assert caps(compiled) == {"c1-r1-n1": (200, "rack c1/r1"), "c1-r1-n2": (125, "site t")}
    assert compiled.site_domain.cap_w == 125 and compiled.site_domain.draw_w == 5600


def test_domain_draws_are_taken_at_the_final_caps():
    # The rack (5 kW) caps at 375 W and draws 5000 W then; the site (4.5 kW) lowers the
    # same GPUs to 312 W, so the rack's nodes draw 2000 + 8 x 312 = 4496 W in the end.
    compiled = plan(S([C([R(["n4", "n4"], "5")])], grid_mw="0.0045", gpu_models=GPU, skus=SKUS))
    (rack,), (container,) = compiled.racks, compiled.containers
    assert rack.draw_w == container.draw_w == compiled.site_domain.draw_w == 4496
    assert rack.headroom_w == 504 and container.headroom_w == 1_000_000 - 4496
    assert rack.cap_w == 375  # what the rack itself imposed, even though the site went lower


def test_tx_odessa_rack_draw_is_its_nodes_draw():
    """Before commit d726b54, c04/r01 reported 98.4 kW (the rack's draw before the container capped
    its GPUs at 664 W) where its 12 nodes draw 12 x (2600 + 8 x 664) = 94.944 kW."""
    compiled = compile_budget(load_site(INVENTORIES / "tx-odessa" / "site.yaml"))
    members = [n for n in compiled.nodes if n.node.container == "c04" and n.node.rack == "r01"]
    assert {n.gpu_cap_w for n in members} == {664}
    (rack,) = [r for r in compiled.racks if r.name == "c04/r01"]
    assert rack.draw_w == sum(n.draw_w for n in members) == 94_944
    data = plan_data(compiled)
    (c04,) = [c for c in data["containers"] if c["name"] == "c04"]
    assert (c04["racks"][0]["draw_kw"], c04["racks"][0]["headroom_kw"]) == (94.944, 5.056)


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
    ("hosts", "gpus_by_bounds", "budget", "expected"),
    [
        (0, {(0, 500): 4}, 1000, 250),
        (100, {(0, 500): 4}, 99, None),
        (0, {(0, 300): 4, (0, 500): 4}, 3200, 500),  # fits at ceilings: the highest ceiling
        (0, {(0, 300): 4, (0, 500): 4}, 3199, 499),
        (0, {(0, 300): 4, (0, 500): 4}, 2399, 299),
        (1000, {(0, 300): 2, (0, 700): 8}, 1000, 0),
        # Floors: every GPU at its floor is the least a domain can draw.
        (0, {(100, 500): 4}, 399, None),
        (0, {(100, 500): 4}, 400, 100),
        (0, {(200, 700): 8, (100, 350): 8}, 2799, 149),  # 1600 + 8 x W
        (0, {(200, 700): 8, (100, 350): 8}, 4400, 275),  # 16 x W
        (0, {(200, 700): 8, (100, 350): 8}, 5607, 350),  # 8 x W + 2800
        (0, {(200, 700): 8, (100, 350): 8}, 5608, 351),
        (0, {(300, 300): 2, (100, 500): 1}, 799, 199),  # a GPU with no range at all
    ],
)
def test_largest_cap(hosts, gpus_by_bounds, budget, expected):
    assert largest_cap(hosts, gpus_by_bounds, budget) == expected
