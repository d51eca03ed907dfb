"""Properties of the budget compiler on random sites, against a naive reference.

The reference applies the rule as written, scanning W down one watt at a time, so it
is obviously right and too slow for real sites; the compiler must agree with it.
"""

import re
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecohash.budget import compile_budget, container_budget_w, it_budget_w, kw
from ecohash.errors import InfeasibleSiteError
from ecohash.inventory import load_site, load_site_text
from ecohash.report import plan_data
from tests.sitegen import C, R, S, catalogs


def decimal_text(low: int, high: int, places: int = 1):
    return st.integers(low, high).map(lambda v: f"{v / 10**places:.{places}f}")


@st.composite
def sites(draw):
    models, skus = draw(catalogs())
    rack = st.builds(R, st.lists(st.sampled_from(sorted(skus)), max_size=4),
                     st.none() | decimal_text(20, 400))
    container = st.builds(C, st.lists(rack, min_size=1, max_size=3),
                          decimal_text(50, 800), decimal_text(50, 800))
    return S(draw(st.lists(container, min_size=1, max_size=3)),
             grid_mw=draw(decimal_text(5, 150, 3)), reserve_pct=draw(decimal_text(0, 500)),
             pue=draw(decimal_text(100, 200, 2)), gpu_models=models, skus=skus)


def budget_domains(site):
    """(budget or None, member nodes) of every rack, container and the site, in compile order."""
    domains = []
    for container in site.containers:
        for rack in container.racks:
            budget = Fraction(rack.power_kw) * 1000 if rack.power_kw is not None else None
            domains.append((budget, list(rack.nodes)))
        domains.append((container_budget_w(Fraction(container.power_kw), Fraction(container.cooling_kw)),
                        list(container.nodes)))
    domains.append((it_budget_w(site), site.nodes))
    return domains


def reference(site, floors=True):
    """Final ceilings by the rule as written, or None when infeasible; asserts maximality.

    With floors=False, the rule before per-GPU floors (commit d726b54): one W for every GPU of a domain, and a
    domain infeasible as soon as W is below any of its GPUs' min_cap_w.
    """
    nodes = site.nodes
    ceiling = {n.name: n.gpu.tdp_w if n.gpu else 0 for n in nodes}
    for budget, members in budget_domains(site):
        if budget is None:
            continue
        floor = {n.name: min(n.gpu.min_cap_w, ceiling[n.name]) if floors and n.gpu else 0
                 for n in members}

        def setting(n, w, floor=floor):
            return max(floor[n.name], min(ceiling[n.name], w))

        def draw(w, members=members, setting=setting):
            return sum(n.host_w + n.gpus * setting(n, w) for n in members)

        top = max([ceiling[n.name] for n in members], default=0)
        if draw(top) <= budget:
            continue
        w = top
        while w >= 0 and draw(w) > budget:
            w -= 1
        if w < 0:
            return None
        assert draw(w + 1) > budget  # maximal: one more watt breaks the domain
        for n in members:
            ceiling[n.name] = setting(n, w)
            if n.gpu and ceiling[n.name] < n.gpu.min_cap_w:
                return None
    return {n.name: ceiling[n.name] if n.gpus else None for n in nodes}


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(sites())
def test_compiler_matches_the_rule_and_keeps_every_domain_in_budget(generated):
    site = load_site_text(generated.yaml(), "t.yaml")
    expected = reference(site)
    try:
        plan = compile_budget(site)
    except InfeasibleSiteError as infeasible:
        assert expected is None
        for problem in infeasible.problems:
            # Each message names a need (every GPU at its floor) the budget cannot meet;
            # kW to 3 places, so a need less than half a watt over shows as equal.
            budget, need = re.search(r"budget ([\d.]+) kW, .* need ([\d.]+) kW", problem.message).groups()
            assert Decimal(need) >= Decimal(budget), problem.message
        return
    assert expected is not None
    assert {n.node.name: n.gpu_cap_w for n in plan.nodes} == expected
    for n in plan.nodes:
        if n.node.gpu:
            assert n.node.gpu.min_cap_w <= n.gpu_cap_w <= n.node.gpu.tdp_w
    for domain in (*plan.racks, *plan.containers, plan.site_domain):
        if domain.budget_w is not None:
            assert domain.draw_w <= domain.budget_w
    assert plan.site_domain.draw_w == sum(n.draw_w for n in plan.nodes)


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(sites())
def test_a_site_feasible_under_the_single_w_rule_keeps_its_caps(generated):
    """Per-GPU floors amended the rule; no site that compiled before may change a cap."""
    site = load_site_text(generated.yaml(), "t.yaml")
    before = reference(site, floors=False)
    if before is None:
        return
    assert {n.node.name: n.gpu_cap_w for n in compile_budget(site).nodes} == before


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[1] / "inventories").glob("*/site.yaml")),
                         ids=lambda path: path.parent.name)
def test_example_sites_keep_their_caps(path):
    site = load_site(path)
    caps = {n.node.name: n.gpu_cap_w for n in compile_budget(site).nodes}
    assert caps == reference(site, floors=False) == reference(site)


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(sites())
def test_every_domain_draws_what_its_nodes_draw_at_their_final_caps(generated):
    site = load_site_text(generated.yaml(), "t.yaml")
    try:
        plan = compile_budget(site)
    except InfeasibleSiteError:
        return
    draw_of = {n.node.name: n.node.host_w + n.node.gpus * (n.gpu_cap_w or 0) for n in plan.nodes}
    domains = [*plan.racks, *plan.containers, plan.site_domain]
    members = [*(r.nodes for c in site.containers for r in c.racks),
               *(c.nodes for c in site.containers), site.nodes]
    # What `plan --json` (and so the budget ConfigMaps and the provision report) shows.
    data = plan_data(plan)
    reported = [*(r for c in data["containers"] for r in c["racks"]), *data["containers"], data]
    for domain, nodes, shown in zip(domains, members, reported, strict=True):
        draw = sum(draw_of[n.name] for n in nodes)
        assert domain.draw_w == draw, domain.label
        assert shown["draw_kw"] == float(kw(draw)), domain.label
        if domain.budget_w is None:
            assert domain.headroom_w is None
        else:
            assert domain.headroom_w == domain.budget_w - draw, domain.label
            assert shown["headroom_kw"] == float(kw(domain.budget_w - draw)), domain.label
