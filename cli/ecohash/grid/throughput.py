"""What a curtailment is expected to cost in throughput, from the catalog's curves.

Each GPU model's curve (catalog.yaml `throughput`) maps the share of the GPU's uncapped
draw it may use to the share of its uncapped throughput it keeps. A GPU is taken flat out
at its TDP, as the rule takes it: its share of draw under a cap is min(cap, tdp) / tdp,
and what a curtailment keeps is the curve at the event's cap over the curve at the
planned cap. Containers and the site weigh their GPUs equally. A model with no curve of
its own is given the A100 curve, marked ESTIMATE like every curve not measured on its model.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from functools import cache
from typing import Any

from ecohash.budget import Plan
from ecohash.grid.rule import Solution
from ecohash.inventory.catalog import throughput_curves

# The curve a GPU model without one of its own is given, and what that rests on.
FALLBACK_MODEL = "a100-sxm"
FALLBACK_ESTIMATE = ("no curve for this GPU model in the catalog: the A100-SXM inference curve "
                     "(Emerald AI) is assumed")


@dataclass(frozen=True)
class Curve:
    points: tuple[tuple[Fraction, Fraction], ...]  # (share of uncapped draw, of throughput), 0..1
    source: str  # the measurement, or for an estimate what it is based on
    estimate: bool

    def at(self, draw_share: Fraction) -> Fraction:
        """The throughput share at a share of uncapped draw: linear between points, held outside."""
        points = self.points
        if draw_share <= points[0][0]:
            return points[0][1]
        for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
            if draw_share <= x1:
                return y0 + (y1 - y0) * (draw_share - x0) / (x1 - x0)
        return points[-1][1]


@cache
def curve_for(gpu_model: str) -> Curve:
    """The catalog's curve for a GPU model key (the fallback, marked estimate, for others)."""
    curves = throughput_curves()
    entry = curves.get(gpu_model)
    if entry is None:
        return Curve(curve_for(FALLBACK_MODEL).points, FALLBACK_ESTIMATE, True)
    measured = curves[entry.get("like", gpu_model)]
    points = tuple((_share(x), _share(y)) for x, y in measured["points"])
    if "estimate" in entry:
        return Curve(points, entry["estimate"], True)
    return Curve(points, entry["source"], False)


def _share(percent: Any) -> Fraction:
    # YAML reads 97.6 as a float; its decimal text is what the source published.
    return Fraction(Decimal(str(percent))) / 100


def expected_throughput(gpu_model: str, cap_w: int, uncapped_draw_w: int | Fraction
                        ) -> tuple[Fraction, str, bool]:
    """(share of uncapped throughput kept at cap_w, the curve's source, whether it is an estimate)."""
    curve = curve_for(gpu_model)
    share = min(Fraction(cap_w), Fraction(uncapped_draw_w)) / Fraction(uncapped_draw_w)
    return curve.at(share), curve.source, curve.estimate


@dataclass(frozen=True)
class Kept:
    """The throughput a group of GPUs is expected to keep during an event, of what it has now."""

    share: Fraction
    gpus: int
    estimate: bool  # some GPU whose cap changes has no measured curve


# A GPU's cap change: (model, planned cap, cap, tdp), None where the cap is the plan's.
_Change = tuple[str, int, int, int] | None


def throughput_kept(plan: Plan, solution: Solution) -> tuple[dict[str, Kept], Kept]:
    """Per container and for the site: the share of planned throughput the event keeps."""
    # GPUs counted by their _Change: a site has thousands of nodes but few distinct changes,
    # and each curve is read once per change.
    gpus_by_change: dict[str, dict[_Change, int]] = {c.name: {} for c in plan.site.containers}
    for node_plan in plan.nodes:
        node = node_plan.node
        if not node.gpus or node.gpu is None or node.sku.gpu is None:
            continue
        planned, cap = solution.planned_w[node.name], solution.caps_w[node.name]
        change = None if cap == planned else (node.sku.gpu, planned, cap, node.gpu.tdp_w)
        counts = gpus_by_change[node.container]
        counts[change] = counts.get(change, 0) + node.gpus
    kept_by_change = {change: _kept(change) for counts in gpus_by_change.values() for change in counts}
    containers = {name: _weighted((gpus, *kept_by_change[change]) for change, gpus in counts.items())
                  for name, counts in gpus_by_change.items()}
    return containers, _weighted((gpus, *kept_by_change[change]) for counts in gpus_by_change.values()
                                 for change, gpus in counts.items())


def _kept(change: _Change) -> tuple[Fraction, bool]:
    """(the share a GPU keeps, whether its curve is an estimate) from its planned cap to its cap."""
    if change is None:
        return Fraction(1), False
    gpu_model, planned, cap, tdp_w = change
    before, _, estimate = expected_throughput(gpu_model, planned, tdp_w)
    after, _, _ = expected_throughput(gpu_model, cap, tdp_w)
    return after / before, estimate


def combined(groups: Iterable[Kept]) -> Kept:
    """Several groups' Kept as one, their GPUs weighed equally (a flex tier, a fleet)."""
    return _weighted((kept.gpus, kept.share, kept.estimate) for kept in groups)


def _weighted(shares: Iterable[tuple[int, Fraction, bool]]) -> Kept:
    gpus, total, estimate = 0, Fraction(0), False
    for count, share, estimated in shares:
        gpus += count
        total += count * share
        estimate = estimate or estimated
    return Kept(total / gpus if gpus else Fraction(1), gpus, estimate)


def percent(share: Fraction) -> Decimal:
    """A share as a percentage to one decimal (rounded half-even)."""
    exact = Decimal(share.numerator * 100) / Decimal(share.denominator)
    return exact.quantize(Decimal("0.1"))
