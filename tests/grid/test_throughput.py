"""Throughput curves: the catalog's, interpolated, and what an event keeps."""

from decimal import Decimal
from fractions import Fraction

from ecohash.budget import compile_budget
from ecohash.grid.rule import solve, target_for
from ecohash.grid.throughput import (
    FALLBACK_ESTIMATE,
    curve_for,
    expected_throughput,
    percent,
    throughput_kept,
)
from ecohash.inventory import load_site_text
from ecohash.inventory.catalog import builtin_catalog, throughput_curves
from tests.sitegen import C, R, S


def test_a100_follows_emerald_ai_sweep_exactly_at_its_points():
    for cap, kept in ((400, "100"), (360, "97.6"), (312, "93.1"), (264, "87.1"), (212, "78.1")):
        share, source, estimate = expected_throughput("a100-sxm", cap, 400)
        assert share == Fraction(Decimal(kept)) / 100, cap
        assert not estimate and "Emerald AI" in source


def test_between_points_linear_and_outside_held():
    # 95% of draw: halfway between 90 -> 97.6 and 100 -> 100.
    assert expected_throughput("a100-sxm", 380, 400)[0] == Fraction(988, 1000)
    assert expected_throughput("a100-sxm", 50, 400)[0] == Fraction(225, 1000)  # below 27%: held
    assert expected_throughput("a100-sxm", 500, 400)[0] == 1  # a cap above the draw costs nothing


def test_every_other_model_is_an_estimate_saying_what_it_rests_on():
    models = builtin_catalog()["gpu_models"]
    for key in models:
        share, source, estimate = expected_throughput(key, models[key]["tdp_w"], models[key]["tdp_w"])
        assert share == 1, key
        assert estimate == (key != "a100-sxm"), key
        assert source, key
    assert expected_throughput("h100-sxm", 600, 700)[2] is True
    assert curve_for("made-up").source == FALLBACK_ESTIMATE and curve_for("made-up").estimate


def test_catalog_curves_are_well_formed():
    curves = throughput_curves()
    assert set(curves) == set(builtin_catalog()["gpu_models"])
    for key, entry in curves.items():
        points = curves[entry.get("like", key)]["points"]
        assert points[-1] == [100, 100], key
        assert points == sorted(points) and [y for _, y in points] == sorted(y for _, y in points), key
        assert ("estimate" in entry) != ("source" in entry), key


def test_throughput_kept_per_container_and_site():
    site = S([C([R(["a"])], flex=3), C([R(["a"])], flex=1)], gpu_models={"a100-sxm": (400, 100)},
             skus={"a": ("a100-sxm", 4, 0)})
    plan = compile_budget(load_site_text(site.yaml(), "t.yaml"))
    # 3200 W planned; to 2848 W: c1 (tier 3) 4 x W <= 1248  ->  312 W = 78% of draw: 93.1%.
    solution = solve(plan, target_for(plan, to_mw=Decimal("0.002848")))
    containers, whole = throughput_kept(plan, solution)
    assert containers["c1"].share == Fraction(931, 1000) and not containers["c1"].estimate
    assert containers["c2"].share == 1
    assert whole.share == (Fraction(931, 1000) + 1) / 2 and whole.gpus == 8
    assert percent(whole.share) == Decimal("96.6")
