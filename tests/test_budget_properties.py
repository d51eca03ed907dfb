"""Properties of the budget compiler on random sites, against a naive reference.

The reference applies the rule as written, scanning W down one watt at a time, so it
is obviously right and too slow for real sites; the compiler must agree with it.
"""

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from ecohash.budget import compile_budget, container_budget_w, it_budget_w
from ecohash.errors import InfeasibleSiteError
from ecohash.inventory import load_site_text
from tests.sitegen import C, R, S


def decimal_text(low: int, high: int, places: int = 1):
    return st.integers(low, high).map(lambda v: f"{v / 10**places:.{places}f}")


@st.composite
def sites(draw):
    models = {}
    for key in ("ga", "gb"):
        tdp = draw(st.integers(100, 1000))
        models[key] = (tdp, draw(st.integers(50, tdp)))
    skus = {}
    for key in ("sa", "sb", "sc"):
        gpus = draw(st.integers(0, 8))
        gpu = draw(st.sampled_from(["ga", "gb"])) if gpus else None
        skus[key] = (gpu, gpus, draw(st.integers(0, 1500)))
    rack = st.builds(R, st.lists(st.sampled_from(sorted(skus)), max_size=4),
                     st.none() | decimal_text(20, 400))
    container = st.builds(C, st.lists(rack, min_size=1, max_size=3),
                          decimal_text(50, 800), decimal_text(50, 800))
    return S(draw(st.lists(container, min_size=1, max_size=3)),
             grid_mw=draw(decimal_text(5, 150, 3)), reserve_pct=draw(decimal_text(0, 500)),
             pue=draw(decimal_text(100, 200, 2)), gpu_models=models, skus=skus)


def reference(site):
    """Final ceilings by the rule as written, or None when infeasible; asserts maximality."""
    nodes = site.nodes
    ceiling = {n.name: n.gpu.tdp_w if n.gpu else 0 for n in nodes}
    domains = []
    for container in site.containers:
        for rack in container.racks:
            if rack.power_kw is not None:
                domains.append((Fraction(rack.power_kw) * 1000, list(rack.nodes)))
        domains.append((container_budget_w(Fraction(container.power_kw), Fraction(container.cooling_kw)),
                        list(container.nodes)))
    domains.append((it_budget_w(site), nodes))
    for budget, members in domains:
        def draw(w, members=members):
            return sum(n.host_w + n.gpus * min(ceiling[n.name], w) for n in members)

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
            ceiling[n.name] = min(ceiling[n.name], w)
            if n.gpu and ceiling[n.name] < n.gpu.min_cap_w:
                return None
    return {n.name: ceiling[n.name] if n.gpus else None for n in nodes}


@settings(max_examples=300, deadline=None)
@given(sites())
def test_compiler_matches_the_rule_and_keeps_every_domain_in_budget(generated):
    site = load_site_text(generated.yaml(), "t.yaml")
    expected = reference(site)
    try:
        plan = compile_budget(site)
    except InfeasibleSiteError:
        assert expected is None
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
