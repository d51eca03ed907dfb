"""The budget compiler: from site power and cooling to a whole-watt power cap per GPU.

The rule, applied to every budget domain bottom-up (each rack with a limit, then each
container, then the site):

- site IT budget = grid_mw x 10^6 x (1 - reserve_pct/100) / pue watts;
  a container's budget = min(power_kw, cooling_kw) x 1000; a rack's = power_kw x 1000.
- a node draws host_w + gpus x cap; its ceiling starts at its GPU model's tdp_w.
- within a domain a GPU's floor is min(min_cap_w, ceiling): the driver refuses lower.
  The domain finds the largest whole W such that the sum over its nodes of
  host_w + gpus x max(floor, min(ceiling, W)) fits its budget. If every node fits at its
  ceiling the domain sets no cap; otherwise every ceiling in it becomes
  max(floor, min(ceiling, W)): a GPU whose floor is above W stays at its floor and the
  others go lower for it. A domain that does not fit even with every GPU at its floor
  (hosts alone over budget included) makes the site infeasible.
- a node's final ceiling is its cap, and every domain's draw and headroom are taken at
  the final caps (a container or the site may lower caps after a rack's turn).

All arithmetic is on integers and Fractions built from the YAML's decimal text, so the
same file always gives the same caps, to the watt.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

from ecohash.errors import InfeasibleSiteError, Problem
from ecohash.inventory.site import Node, Site, YamlPath


@dataclass(frozen=True)
class DomainPlan:
    """One budget domain (a rack, a container or the site) after compiling."""

    kind: str  # "rack", "container" or "site"
    name: str  # "c01/r01", "c01" or the site's name
    budget_w: Fraction | None  # None for a rack without a limit
    draw_at_tdp_w: int
    draw_w: int
    gpus: int
    # The W this domain imposed (a GPU whose floor is above W stays at its floor); None
    # when everything fit.
    cap_w: int | None
    path: YamlPath

    @property
    def headroom_w(self) -> Fraction | None:
        return None if self.budget_w is None else self.budget_w - self.draw_w

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name}"


@dataclass(frozen=True)
class NodePlan:
    node: Node
    gpu_cap_w: int | None  # None for a node without GPUs
    capped_by: str | None  # label of the domain that set the cap, None at TDP

    @property
    def draw_w(self) -> int:
        return self.node.host_w + self.node.gpus * (self.gpu_cap_w or 0)


@dataclass(frozen=True)
class Plan:
    site: Site
    site_domain: DomainPlan
    containers: tuple[DomainPlan, ...]
    racks: tuple[DomainPlan, ...]
    nodes: tuple[NodePlan, ...]


def it_budget_w(site: Site) -> Fraction:
    """The site's IT budget in watts, exactly."""
    power = site.power
    return (Fraction(power.grid_mw) * 10**6 * (1 - Fraction(power.reserve_pct) / 100)
            / Fraction(power.pue))


def container_budget_w(power_kw: Fraction, cooling_kw: Fraction) -> Fraction:
    return min(power_kw, cooling_kw) * 1000


def largest_cap(host_w: int, gpus_by_bounds: dict[tuple[int, int], int],
                budget_w: int) -> int | None:
    """The largest whole W with host_w + sum(gpus x max(floor, min(ceiling, W))) <= budget_w.

    gpus_by_bounds counts GPUs by (floor, ceiling), floor <= ceiling. None when the domain
    does not fit even with every GPU at its floor; the highest ceiling when it fits at its
    ceilings.
    """
    remaining = budget_w - host_w - sum(floor * gpus for (floor, _), gpus in gpus_by_bounds.items())
    if remaining < 0:
        return None
    # A GPU draws W between its floor and its ceiling, so the domain's draw is linear in W
    # between consecutive bounds, rising by W x the GPUs in range: count them at each bound.
    in_range_change: dict[int, int] = {}
    for (floor, ceiling), gpus in gpus_by_bounds.items():
        in_range_change[floor] = in_range_change.get(floor, 0) + gpus
        in_range_change[ceiling] = in_range_change.get(ceiling, 0) - gpus
    in_range = 0
    previous = 0
    for bound in sorted(in_range_change):
        rise = in_range * (bound - previous)
        if rise > remaining:
            return previous + remaining // in_range
        remaining -= rise  # what the budget leaves at W = bound
        in_range += in_range_change[bound]
        previous = bound
    return previous


@dataclass(frozen=True)
class _Domain:
    kind: str
    name: str
    members: Sequence[int]  # indices into the site's nodes
    budget_w: Fraction | None
    path: YamlPath


class _Compiler:
    def __init__(self, site: Site):
        self.site = site
        nodes = site.nodes
        self.nodes = nodes
        # Each node's figures read once into lists: every node is in three domains (rack,
        # container, site), summed several times in each, and a property call per read
        # was most of compiling a large site.
        self.host_w = [node.host_w for node in nodes]
        self.gpus = [node.gpus for node in nodes]
        tdp_w = [node.gpu.tdp_w if node.gpu else 0 for node in nodes]
        # The rule's floor, min(min_cap_w, ceiling), is fixed per node: a ceiling starts
        # at tdp_w and no domain sets it below the floor.
        self.floor = [min(node.gpu.min_cap_w, tdp) if node.gpu else 0
                      for node, tdp in zip(nodes, tdp_w, strict=True)]
        self.draw_at_tdp_w = [h + g * t for h, g, t in zip(self.host_w, self.gpus, tdp_w, strict=True)]
        self.ceiling = tdp_w
        self.capped_by: list[str | None] = [None] * len(nodes)
        self.problems: list[Problem] = []

    def impose(self, domain: _Domain) -> int | None:
        """Lower the ceilings of the domain's nodes to fit its budget; the W it set, if any."""
        gpus_of, ceiling, floor, members = self.gpus, self.ceiling, self.floor, domain.members
        host_w = sum(map(self.host_w.__getitem__, members))
        gpus_by_bounds: dict[tuple[int, int], int] = {}
        for i in members:
            if gpus_of[i]:
                bounds = (floor[i], ceiling[i])
                gpus_by_bounds[bounds] = gpus_by_bounds.get(bounds, 0) + gpus_of[i]
        draw = host_w + sum(c * g for (_, c), g in gpus_by_bounds.items())
        if domain.budget_w is None or draw <= domain.budget_w:
            return None
        label = f"{domain.kind} {domain.name}"
        cap = largest_cap(host_w, gpus_by_bounds, math.floor(domain.budget_w))
        if cap is None:
            lowest = host_w + sum(f * g for (f, _), g in gpus_by_bounds.items())
            self.problems.append(Problem(
                str(self.site.file), self.site.line_of(domain.path),
                f"{label} is infeasible: budget {_kw(domain.budget_w)} kW, but its "
                f"{len(members)} nodes need {_kw(lowest)} kW even at the lowest settable "
                f"GPU caps (hosts alone {_kw(host_w)} kW)",
            ))
            # Carry on with every GPU at its floor, so that every other infeasible domain
            # is reported too.
            cap = 0
        for i in members:
            setting = max(floor[i], cap)
            if setting < ceiling[i]:
                ceiling[i] = setting
                self.capped_by[i] = label
        return cap

    def plan(self, domain: _Domain, cap_w: int | None, node_draw_w: list[int]) -> DomainPlan:
        members = domain.members
        return DomainPlan(domain.kind, domain.name, domain.budget_w,
                          sum(map(self.draw_at_tdp_w.__getitem__, members)),
                          sum(map(node_draw_w.__getitem__, members)),
                          sum(map(self.gpus.__getitem__, members)), cap_w, domain.path)


def compile_budget(site: Site) -> Plan:
    """Compile the site's budgets into caps; raise InfeasibleSiteError naming each failing domain."""
    compiler = _Compiler(site)
    index = {id(node): i for i, node in enumerate(compiler.nodes)}
    # Caps are imposed bottom-up (each container's racks, then the container, then the
    # site), but every domain's figures wait for the end: a container or the site may
    # lower caps after a rack's turn, and a domain draws what its nodes draw at their
    # final caps.
    racks: list[tuple[_Domain, int | None]] = []
    containers: list[tuple[_Domain, int | None]] = []
    for container in site.containers:
        container_members: list[int] = []
        for rack in container.racks:
            members = [index[id(node)] for node in rack.nodes]
            container_members.extend(members)
            budget = Fraction(rack.power_kw) * 1000 if rack.power_kw is not None else None
            domain = _Domain("rack", rack.qualified_name, members, budget, rack.path)
            racks.append((domain, compiler.impose(domain)))
        budget = container_budget_w(Fraction(container.power_kw), Fraction(container.cooling_kw))
        domain = _Domain("container", container.name, container_members, budget, container.path)
        containers.append((domain, compiler.impose(domain)))
    domain = _Domain("site", site.name, range(len(compiler.nodes)), it_budget_w(site),
                     ("spec", "power"))
    site_cap = compiler.impose(domain)
    if compiler.problems:
        raise InfeasibleSiteError(compiler.problems)
    node_plans = tuple(
        NodePlan(node, ceiling if gpus else None, capped_by) for node, gpus, ceiling, capped_by
        in zip(compiler.nodes, compiler.gpus, compiler.ceiling, compiler.capped_by, strict=True)
    )
    node_draw_w = [node_plan.draw_w for node_plan in node_plans]
    return Plan(site, compiler.plan(domain, site_cap, node_draw_w),
                tuple(compiler.plan(d, cap, node_draw_w) for d, cap in containers),
                tuple(compiler.plan(d, cap, node_draw_w) for d, cap in racks), node_plans)


def kw(watts: Fraction | int) -> Decimal:
    """Watts as kW rounded half-even to 3 decimals, computed exactly."""
    fraction = Fraction(watts) / 1000
    exact = Decimal(fraction.numerator) / Decimal(fraction.denominator)
    return exact.quantize(Decimal("0.001"), rounding=ROUND_HALF_EVEN)


def _kw(watts: Fraction | int) -> str:
    return str(kw(watts))
