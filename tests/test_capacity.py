import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecohash.budget import compile_budget
from ecohash.capacity import capacity
from ecohash.errors import InfeasibleSiteError, InvalidInputError
from ecohash.inventory import load_site_text
from tests.sitegen import C, R, S

GPU = {"g500": (500, 100)}
SKUS = {"n4": ("g500", 4, 1000), "cpu": (None, 0, 400)}


def plan_of(site: S):
    return compile_budget(load_site_text(site.yaml(), "t.yaml"))


def test_counts_per_container_and_site():
    # c1: 10 kW, draws 3 kW -> 7 kW headroom; at 250 W a node draws 2 kW -> 3 more.
    # c2: 20 kW, empty -> 10 more. Site: 0.025 MW - 3 kW = 22 kW -> 11 more in all.
    site = S([C([R(["n4"])], power_kw="10"), C([R([])], power_kw="20")],
             grid_mw="0.025", gpu_models=GPU, skus=SKUS)
    room = capacity(plan_of(site), "n4", 250)
    assert room.node_draw_w == 2000
    assert [(c.name, c.nodes) for c in room.containers] == [("c1", 3), ("c2", 10)]
    assert room.site_nodes == 11
    assert room.grid_nodes == 11


def test_headroom_is_taken_at_the_caps_the_site_sets_after_the_container():
    # c1's two nodes draw 6 kW at TDP: exactly its budget, so it sets no cap. The site
    # (5.03 kW) then caps them at floor((5030 - 2000) / 8) = 378 W: 5024 W, so the container
    # has 976 W of headroom and the site 6 W, room for 3 nodes of 2 W (before commit d726b54 the
    # container's headroom was read at TDP: 0 W, so 0 nodes).
    skus = {**SKUS, "probe": (None, 0, 2)}
    site = S([C([R(["n4", "n4"])], power_kw="6")], grid_mw="0.00503", gpu_models=GPU, skus=skus)
    room = capacity(plan_of(site), "probe")
    assert (room.containers[0].headroom_w, room.site_headroom_w) == (976, 6)
    assert [c.nodes for c in room.containers] == [3] and room.site_nodes == 3
    for extra, caps in ((3, {378}), (4, {377})):
        grown = S([C([R(["n4", "n4"]), R(["probe"] * extra)], power_kw="6")], grid_mw="0.00503",
                  gpu_models=GPU, skus=skus)
        assert {n.gpu_cap_w for n in plan_of(grown).nodes if n.node.gpus} == caps


def test_default_cap_is_tdp():
    room = capacity(plan_of(S([C([R([])], power_kw="9")], gpu_models=GPU, skus=SKUS)), "n4")
    assert room.cap_w == 500 and room.node_draw_w == 3000 and room.site_nodes == 3


@pytest.mark.parametrize(
    ("sku", "cap", "message"),
    [
        ("n44", None, "unknown sku 'n44' (did you mean 'n4'?)"),
        ("n4", 99, "--cap 99 is outside what sku 'n4' can run at: its GPU takes caps from 100 to 500 W"),
        ("n4", 501, "--cap 501 is outside what sku 'n4' can run at: its GPU takes caps from 100 to 500 W"),
        ("cpu", 300, "sku 'cpu' has no GPUs, so --cap does not apply"),
    ],
)
def test_bad_requests_are_invalid_input(sku, cap, message):
    plan = plan_of(S([C([R(["n4"])])], gpu_models=GPU, skus=SKUS))
    with pytest.raises(InvalidInputError) as raised:
        capacity(plan, sku, cap)
    assert str(raised.value) == message


@settings(max_examples=150, deadline=None)
@given(nodes=st.lists(st.integers(1, 3), min_size=1, max_size=3),
       container_kw=st.integers(3, 40), grid_kw=st.integers(3, 60), cap=st.integers(100, 500))
def test_answer_is_what_the_compiler_accepts_without_lowering_caps(nodes, container_kw, grid_kw, cap):
    """Adding the answer's nodes (as GPUs whose TDP is the cap) changes no existing cap;
    one more node would lower a cap or make the site infeasible."""
    containers = [C([R(["n4"] * n)], power_kw=str(container_kw)) for n in nodes]
    site = S(containers, grid_mw=f"{grid_kw / 1000:.3f}", gpu_models=GPU, skus=SKUS)
    try:
        plan = plan_of(site)
    except InfeasibleSiteError:
        return
    room = capacity(plan, "n4", cap)
    before = {n.node.name: n.gpu_cap_w for n in plan.nodes}
    models = {**GPU, "new": (cap, 100)}
    skus = {**SKUS, "new4": ("new", 4, 1000)}
    for index, container in enumerate(room.containers):
        for extra, should_fit in ((container.nodes, True), (container.nodes + 1, False)):
            grown = [C([*c.racks, R(["new4"] * extra)] if i == index else c.racks, c.power_kw)
                     for i, c in enumerate(containers)]
            try:
                after = plan_of(S(grown, site.grid_mw, gpu_models=models, skus=skus))
                unchanged = all(after_cap == before.get(name, cap) for name, after_cap in
                                {n.node.name: n.gpu_cap_w for n in after.nodes}.items())
            except InfeasibleSiteError:
                unchanged = False
            assert unchanged == should_fit, (index, extra)
