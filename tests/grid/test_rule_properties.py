"""The curtailment rule on random small sites, against a naive reference.

The reference applies the rule as docs/grid.md writes it, lowering W one watt at a time
and comparing draws with the exact Fraction target, so it is obviously right and too
slow for real sites; solve() must agree with it on every cap.
"""

from decimal import ROUND_CEILING, Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecohash.budget import compile_budget
from ecohash.errors import InfeasibleSiteError
from ecohash.grid.rule import CurtailmentInfeasibleError, mw, solve, target_for
from ecohash.inventory import load_site_text
from tests.sitegen import C, R, S, catalogs


@st.composite
def sites(draw):
    models, skus = draw(catalogs())
    # Some racks bind, so planned caps differ from TDP and from each other.
    rack = st.builds(R, st.lists(st.sampled_from(sorted(skus)), max_size=4),
                     st.none() | st.integers(20, 40).map(str))
    container = st.builds(C, st.lists(rack, min_size=1, max_size=3), flex=st.integers(0, 3))
    pue = draw(st.integers(100, 200)).__truediv__(100)
    return S(draw(st.lists(container, min_size=1, max_size=4)), pue=f"{pue:.2f}",
             gpu_models=models, skus=skus)


def reference(plan, it_target: Fraction, held: dict[str, int]):
    """Caps by the rule as written, or None when caps cannot reach the target."""
    flex = {c.name: c.flex for c in plan.site.containers}
    gpu_nodes = [n for n in plan.nodes if n.node.gpus]
    planned = {n.node.name: n.gpu_cap_w for n in gpu_nodes}
    caps = {name: held.get(name, cap) for name, cap in planned.items()}
    hosts = sum(n.node.host_w for n in plan.nodes)

    def draw():
        return hosts + sum(n.node.gpus * caps[n.node.name] for n in gpu_nodes)

    if draw() <= it_target:
        return caps
    for tier in (3, 2, 1):
        active = [n for n in gpu_nodes if flex[n.node.container] == tier and n.node.name not in held]
        floor = {n.node.name: min(n.node.gpu.min_cap_w, planned[n.node.name]) for n in active}

        def put(w, active=active, floor=floor):
            for n in active:
                caps[n.node.name] = max(floor[n.node.name], min(planned[n.node.name], w))

        w = max([planned[n.node.name] for n in active], default=-1)
        while w >= 0:
            put(w)
            if draw() <= it_target:
                put(w + 1)
                assert draw() > it_target  # maximal: one more watt breaks the target
                put(w)
                return caps
            w -= 1
        put(0)  # the tier at its floors
    return None


@pytest.mark.slow
@settings(max_examples=400, deadline=None)
@given(sites(), st.integers(1, 60), st.data())
def test_solve_matches_the_rule_one_watt_at_a_time(generated, pct, data):
    try:
        plan = compile_budget(load_site_text(generated.yaml(), "t.yaml"))
    except InfeasibleSiteError:
        return
    gpu_nodes = [n for n in plan.nodes if n.node.gpus]
    held = {}
    for n in data.draw(st.lists(st.sampled_from(gpu_nodes), max_size=2, unique=True) if gpu_nodes
                       else st.just([])):
        held[n.node.name] = data.draw(st.integers(n.node.gpu.min_cap_w, n.node.gpu.tdp_w))
    target = target_for(plan, by_pct=Decimal(pct))
    expected = reference(plan, target.it_w, held)
    try:
        solution = solve(plan, target, held)
    except CurtailmentInfeasibleError as infeasible:
        assert expected is None
        # The named figure is the lowest reachable draw rounded up to the kW, so it is
        # reachable and the target is below it.
        named = Decimal(str(infeasible).rsplit(" is ", 1)[1].removesuffix(" MW"))
        assert named == mw(_lowest_it_w(plan, held) * Fraction(plan.site.power.pue), ROUND_CEILING)
        assert named * 10**6 > target.facility_w
        solve(plan, target_for(plan, to_mw=named), held)
        return
    assert solution.caps_w == expected
    assert solution.it_draw_w <= target.it_w
    assert solution.it_draw_w == sum(n.node.host_w + n.node.gpus * solution.caps_w.get(n.node.name, 0)
                                     for n in plan.nodes)
    flex = {c.name: c.flex for c in plan.site.containers}
    for n in gpu_nodes:
        cap, planned = solution.caps_w[n.node.name], solution.planned_w[n.node.name]
        if n.node.name in held:
            assert cap == held[n.node.name]
        elif flex[n.node.container] == 0:
            assert cap == planned
        else:
            assert min(n.node.gpu.min_cap_w, planned) <= cap <= planned


def _lowest_it_w(plan, held):
    flex = {c.name: c.flex for c in plan.site.containers}
    total = 0
    for n in plan.nodes:
        total += n.node.host_w
        if not n.node.gpus:
            continue
        if n.node.name in held:
            cap = held[n.node.name]
        elif flex[n.node.container] == 0:
            cap = n.gpu_cap_w
        else:
            cap = min(n.node.gpu.min_cap_w, n.gpu_cap_w)
        total += n.node.gpus * cap
    return total
