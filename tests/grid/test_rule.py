"""The curtailment rule on cases computed by hand (docs/grid.md states the rule)."""

from datetime import timedelta
from decimal import Decimal
from fractions import Fraction

import pytest

from ecohash.budget import compile_budget
from ecohash.errors import InvalidInputError
from ecohash.grid.rule import (
    CurtailmentInfeasibleError,
    at_floors,
    expected_savings_w,
    find_program,
    parse_duration,
    planned_facility_w,
    program_target,
    solve,
    target_for,
)
from ecohash.inventory import load_site, load_site_text
from tests.conftest import REPO
from tests.sitegen import C, R, S

# A 4-GPU node of 500 W GPUs (min 100 W) on a 1000 W host: 3000 W at TDP; and one of
# 300 W GPUs (min 150 W) on a 500 W host: 1700 W.
GPU = {"g500": (500, 100), "g300": (300, 150)}
SKUS = {"n4": ("g500", 4, 1000), "l4": ("g300", 4, 500)}


def plan(*containers: C, pue: str = "1"):
    return compile_budget(load_site_text(S(list(containers), pue=pue, gpu_models=GPU, skus=SKUS).yaml(),
                                         "t.yaml"))


def to_w(compiled, watts: int, held=None):
    """Solve for a facility target of `watts`, given as MW the way --to gives it."""
    return solve(compiled, target_for(compiled, to_mw=Decimal(watts) / 10**6), held)


def test_tier_3_binds_and_the_others_keep_their_caps():
    # 9000 W planned. Tier 3 (c1's 8 GPUs) active, c2 fixed at 500 W:
    # 3000 W of hosts + 4 x 500 + 8 x W <= 8000  ->  W = 375.
    compiled = plan(C([R(["n4", "n4"])], flex=3), C([R(["n4"])]))
    solution = to_w(compiled, 8000)
    assert solution.caps_w == {"c1-r1-n1": 375, "c1-r1-n2": 375, "c2-r1-n1": 500}
    assert (solution.binding_tier, solution.binding_w, solution.tiers_at_floor) == (3, 375, ())
    assert (solution.it_draw_w, solution.planned_it_draw_w) == (8000, 9000)
    assert solution.planned_w == {"c1-r1-n1": 500, "c1-r1-n2": 500, "c2-r1-n1": 500}


def test_tier_3_goes_to_its_floors_and_tier_2_binds():
    # 12000 W planned; B = 7600. Tier 3 alone: 4000 + 4 x W + 12 x 500 > 7600 even at W = 0
    # (its floor, 100 W, gives 10400), so c1 goes to 100 W; tier 2: 4000 + 400 + 2000 + 8 x W
    # <= 7600  ->  W = 150.
    compiled = plan(C([R(["n4"])], flex=3), C([R(["n4", "n4"])], flex=2), C([R(["n4"])], flex=1))
    solution = to_w(compiled, 7600)
    assert solution.caps_w == {"c1-r1-n1": 100, "c2-r1-n1": 150, "c2-r1-n2": 150, "c3-r1-n1": 500}
    assert (solution.binding_tier, solution.binding_w, solution.tiers_at_floor) == (2, 150, (3,))
    assert solution.it_draw_w == 7600


def test_tier_1_binds_and_flex_0_never_moves():
    # 9000 W planned, no flex-2 container (an empty tier is passed over, not "at its floor").
    # Tier 3 to 100 W: 3000 + 2000 (flex 0) + 400 + 4 x W <= 6000  ->  W = 150 for tier 1.
    compiled = plan(C([R(["n4"])], flex=0), C([R(["n4"])], flex=1), C([R(["n4"])], flex=3))
    solution = to_w(compiled, 6000)
    assert solution.caps_w == {"c1-r1-n1": 500, "c2-r1-n1": 150, "c3-r1-n1": 100}
    assert (solution.binding_tier, solution.binding_w, solution.tiers_at_floor) == (1, 150, (3,))


def test_at_floors_is_each_tier_at_its_floors_and_what_solve_reaches_for_that_draw():
    # Mixed floors: a g500 at 100 W, a g300 at 150 W; flex 0 stays at plan.
    compiled = plan(C([R(["n4", "l4"])], flex=3), C([R(["n4"])], flex=1), C([R(["n4"])], flex=0))
    tier_3 = at_floors(compiled, (3,))
    assert tier_3.caps_w == {"c1-r1-n1": 100, "c1-r1-n2": 150, "c2-r1-n1": 500, "c3-r1-n1": 500}
    # 4,700 + 3,000 + 3,000 W planned; tier 3 gives 4 x 400 + 4 x 150 back.
    assert (tier_3.planned_it_draw_w, tier_3.it_draw_w) == (10700, 10700 - 2200)
    every = at_floors(compiled, (3, 2, 1, 0))  # flex 0 never gives power back, asked or not
    assert every.caps_w == {"c1-r1-n1": 100, "c1-r1-n2": 150, "c2-r1-n1": 100, "c3-r1-n1": 500}
    assert every.tiers_at_floor == (3, 1)
    # The rule asked for exactly that draw takes every tier to its floors too.
    assert solve(compiled, every.target).caps_w == every.caps_w
    assert solve(compiled, every.target).it_draw_w == every.it_draw_w == 10700 - 2200 - 1600


def test_mixed_models_in_a_tier_each_stop_at_their_floor():
    # 4700 W planned. For W below 150: 1500 + 4 x W + 4 x 150 (the g300s at their floor)
    # <= 2600  ->  W = 125: the g500s go below the g300s' floor for them.
    compiled = plan(C([R(["n4", "l4"])]))
    solution = to_w(compiled, 2600)
    assert solution.caps_w == {"c1-r1-n1": 125, "c1-r1-n2": 150}
    assert (solution.binding_w, solution.it_draw_w) == (125, 2600)
    # Above both floors one W for all: 1500 + 8 x W <= 3500  ->  250.
    assert to_w(compiled, 3500).caps_w == {"c1-r1-n1": 250, "c1-r1-n2": 250}


def test_a_gpu_never_goes_above_its_planned_cap():
    # A 5 kW rack plans its two nodes at 375 W; the third node is at 500 W. 7600 W target:
    # 3000 + 8 x min(375, W) + 4 x min(500, W) <= 7600  ->  W = 400; the rack stays at 375.
    compiled = plan(C([R(["n4", "n4"], "5"), R(["n4"])]))
    assert to_w(compiled, 7600).caps_w == {"c1-r1-n1": 375, "c1-r1-n2": 375, "c1-r2-n1": 400}


def test_facility_target_is_divided_by_pue_exactly():
    # pue 1.25: 9000 W IT planned is 11250 W at the meter. By 20%: T = 9000 W, B = 7200 W;
    # 3000 + 12 x W <= 7200  ->  W = 350.
    compiled = plan(C([R(["n4", "n4", "n4"])]), pue="1.25")
    assert planned_facility_w(compiled) == 11250
    target = target_for(compiled, by_pct=Decimal(20))
    assert (target.facility_w, target.it_w, target.label) == (9000, 7200, "by 20%")
    solution = solve(compiled, target)
    assert set(solution.caps_w.values()) == {350}
    assert solution.facility_draw_w == Fraction(7200 * 5, 4)


def test_unreachable_target_names_the_lowest_facility_draw_in_mw():
    # pue 1.25. Lowest IT draw: hosts 2000 + flex 0 at 2000 + the flex-1 GPUs at 4 x 100 =
    # 4400 W, 5500 W at the meter: named rounded up to the kW (0.006 MW), so asking for it works.
    compiled = plan(C([R(["n4"])], flex=0), C([R(["n4"])]), pue="1.25")
    with pytest.raises(CurtailmentInfeasibleError) as raised:
        solve(compiled, target_for(compiled, to_mw=Decimal("0.005")))
    assert str(raised.value) == ("site t cannot reach 0.005 MW by GPU caps (to 0.005 MW): the lowest "
                                 "facility draw caps can reach is 0.006 MW")
    assert raised.value.exit_code == 2
    assert isinstance(raised.value, InvalidInputError)
    # 6000 W / 1.25 = 4800 W of IT: 4000 + 4 x W <= 4800  ->  W = 200.
    reached = solve(compiled, target_for(compiled, to_mw=Decimal("0.006")))
    assert reached.caps_w == {"c1-r1-n1": 500, "c2-r1-n1": 200}


def test_a_site_whose_only_gpus_are_flex_0_cannot_be_curtailed():
    compiled = plan(C([R(["n4"])], flex=0))
    with pytest.raises(CurtailmentInfeasibleError, match="the lowest facility draw caps can reach is 0.003 MW"):
        to_w(compiled, 2999)


def test_nothing_to_do_when_the_plan_is_within_the_target():
    compiled = plan(C([R(["n4", "n4"])], flex=3))
    solution = to_w(compiled, 6000)
    assert solution.caps_w == solution.planned_w == {"c1-r1-n1": 500, "c1-r1-n2": 500}
    assert (solution.changed, solution.binding_tier, solution.binding_w, solution.tiers_at_floor) == (
        False, None, None, ())


def test_held_nodes_keep_their_cap_and_the_others_go_lower():
    # Without n1: 2000 + 8 x W <= 4800  ->  350. With n1 held at 500: 2000 + 2000 + 4 x W
    # <= 4800  ->  W = 200 for n2 alone.
    compiled = plan(C([R(["n4", "n4"])]))
    assert to_w(compiled, 4800).caps_w == {"c1-r1-n1": 350, "c1-r1-n2": 350}
    solution = to_w(compiled, 4800, {"c1-r1-n1": 500})
    assert solution.caps_w == {"c1-r1-n1": 500, "c1-r1-n2": 200}
    assert solution.held_w == {"c1-r1-n1": 500}
    # A held node counts at its held cap even when nothing else changes.
    assert to_w(compiled, 6000, {"c1-r1-n1": 300}).caps_w == {"c1-r1-n1": 300, "c1-r1-n2": 500}
    with pytest.raises(InvalidInputError, match="held node 'nope' is not a GPU node of site t"):
        to_w(compiled, 4800, {"nope": 500})


def test_held_nodes_can_make_a_target_unreachable():
    compiled = plan(C([R(["n4", "n4"])]))
    with pytest.raises(CurtailmentInfeasibleError, match="is 0.005 MW$"):
        to_w(compiled, 4000, {"c1-r1-n1": 500})  # 2000 + 2000 + 4 x 100 = 4400 at best


def test_targets_by_mw_and_labels():
    compiled = plan(C([R(["n4", "n4", "n4"])]), pue="1.25")  # 11250 W at the meter
    target = target_for(compiled, by_mw=Decimal("0.00125"))
    assert (target.facility_w, target.it_w, target.label) == (10000, 8000, "by 0.00125 MW")
    assert target_for(compiled, to_mw=Decimal("0.01")).label == "to 0.01 MW"
    with pytest.raises(InvalidInputError, match=r"^by 0.02 MW is more than the planned facility draw of "
                                                r"0.011 MW$"):
        target_for(compiled, by_mw=Decimal("0.02"))
    with pytest.raises(InvalidInputError, match="exactly one of to_mw, by_mw or by_pct"):
        target_for(compiled, to_mw=Decimal(1), by_pct=Decimal(2))
    with pytest.raises(InvalidInputError, match=r"by_pct must be between 0 and 100 \(exclusive\) \(got 100\)"):
        target_for(compiled, by_pct=Decimal(100))


def test_example_programs_on_tx_odessa():
    # docs/grid.md's worked example: 3,108,288 W of IT draw at the plan's caps, pue 1.25.
    compiled = compile_budget(load_site(REPO / "inventories" / "tx-odessa" / "site.yaml"))
    assert planned_facility_w(compiled) == 3_885_360
    ers = program_target(compiled, find_program(compiled.site, "ers-10"))
    assert (ers.facility_w, ers.it_w, ers.label) == (3_500_000, 2_800_000, "program ers-10 (to 3.5 MW)")
    solution = solve(compiled, ers)
    # c04 alone (tier 3): 408 hosts x 2600 + 2304 x 612 + 960 x W <= 2,800,000  ->  W = 342.
    assert (solution.binding_tier, solution.binding_w) == (3, 342)
    assert {cap for name, cap in solution.caps_w.items() if name.startswith("c04")} == {342}
    assert {cap for name, cap in solution.caps_w.items() if not name.startswith("c04")} == {612}
    cp = solve(compiled, program_target(compiled, find_program(compiled.site, "4cp")))
    assert cp.target.facility_w == Fraction(3_885_360 * 3, 4)
    # c04 at its 200 W floor still leaves too much; c01-c03 (tier 1) bind at 468 W.
    assert (cp.tiers_at_floor, cp.binding_tier, cp.binding_w) == ((3,), 1, 468)


def test_find_program_names_what_there_is():
    site = load_site(REPO / "inventories" / "tx-odessa" / "site.yaml")
    with pytest.raises(InvalidInputError, match=r"^site tx-odessa has no curtailment program 'ers10' "
                                                r"\(did you mean 'ers-10'\?\)$"):
        find_program(site, "ers10")
    with pytest.raises(InvalidInputError, match=r"has no curtailment program 'x'; valid: 4cp, ers-10$"):
        find_program(site, "x")
    bare = load_site(REPO / "inventories" / "nd-williston" / "site.yaml")
    with pytest.raises(InvalidInputError, match=r"it defines none \(spec.power.curtailment.programs\)"):
        find_program(bare, "ers-10")


def test_expected_savings_count_only_draw_above_the_cap():
    compiled = plan(C([R(["n4", "n4"])]))
    solution = to_w(compiled, 4800)  # both at 350 W
    measured = {"c1-r1-n1": [500.0, 400.0, 350.0, 100.0], "c1-r1-n2": [360.5]}
    assert expected_savings_w(solution, measured) == 150 + 50 + 10.5
    assert expected_savings_w(solution, {}) == 0
    with pytest.raises(InvalidInputError, match="measured draw names 'x', which is not a GPU node"):
        expected_savings_w(solution, {"x": [1.0]})


@pytest.mark.parametrize(("text", "expected"), [
    ("90s", timedelta(seconds=90)), ("15m", timedelta(minutes=15)), ("3h", timedelta(hours=3)),
    ("1h30m", timedelta(minutes=90)), ("2h0m5s", timedelta(hours=2, seconds=5)), ("0", timedelta(0)),
    ("0s", timedelta(0)),
])
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "15", "1.5h", "15 m", "m", "3d", "-5m", "1m1h", "9999999h", "15M"])
def test_parse_duration_refuses(text):
    with pytest.raises(InvalidInputError) as raised:
        parse_duration(text)
    assert str(raised.value) == f"{text!r} is not a duration such as 90s, 15m, 3h or 1h30m"
