"""The budget compiler: from site power and cooling to a whole-watt power cap per GPU.

The rule, applied to every budget domain bottom-up (each rack with a limit, then each
container, then the site):

- site IT budget = grid_mw x 10^6 x (1 - reserve_pct/100) / pue watts;
  a container's budget = min(power_kw, cooling_kw) x 1000; a rack's = power_kw x 1000.
- a node draws host_w + gpus x cap; its ceiling starts at its GPU model's tdp_w.
- a domain finds the largest whole W such that the sum over its nodes of
  host_w + gpus x min(ceiling, W) fits its budget. If every node fits at its ceiling the
  domain sets no cap; otherwise every ceiling in it becomes min(ceiling, W).
- a node's final ceiling is its cap. A cap below the model's min_cap_w, or hosts that
  alone exceed a budget, make the site infeasible.

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
    cap_w: int | None  # the W this domain imposed, None when everything fit
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


def largest_cap(host_w: int, gpus_by_ceiling: dict[int, int], budget_w: int) -> int | None:
    """The largest whole W with host_w + sum(gpus x min(ceiling, W)) <= budget_w.

    None when even W = 0 does not fit (the hosts alone exceed the budget). Assumes the
    domain does not fit at its ceilings, so W is below the highest ceiling.
    """
    remaining = budget_w - host_w
    if remaining < 0:
        return None
    gpus_above = sum(gpus_by_ceiling.values())
    below = 0
    previous = 0
    for ceiling in sorted(gpus_by_ceiling):
        # On [previous, ceiling] the draw is below + W x gpus_above: linear in W.
        if gpus_above and below + ceiling * gpus_above > remaining:
            return max(previous, (remaining - below) // gpus_above)
        below += ceiling * gpus_by_ceiling[ceiling]
        gpus_above -= gpus_by_ceiling[ceiling]
        previous = ceiling
    return previous


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
        self.tdp_w = [node.gpu.tdp_w if node.gpu else 0 for node in nodes]
        self.ceiling = list(self.tdp_w)
        self.capped_by: list[str | None] = [None] * len(nodes)
        self.problems: list[Problem] = []

    def domain(self, kind: str, name: str, members: Sequence[int], budget_w: Fraction | None,
               path: YamlPath) -> DomainPlan:
        gpus_of, ceiling = self.gpus, self.ceiling
        host_w = sum(self.host_w[i] for i in members)
        gpus_by_ceiling: dict[int, int] = {}
        for i in members:
            if gpus_of[i]:
                gpus_by_ceiling[ceiling[i]] = gpus_by_ceiling.get(ceiling[i], 0) + gpus_of[i]
        draw_at_tdp = host_w + sum(gpus_of[i] * self.tdp_w[i] for i in members)
        draw = host_w + sum(c * g for c, g in gpus_by_ceiling.items())
        gpus = sum(gpus_by_ceiling.values())
        cap: int | None = None
        if budget_w is not None and draw > budget_w:
            cap = self._impose(kind, name, members, host_w, gpus_by_ceiling, budget_w, path)
            draw = host_w + sum(gpus_of[i] * ceiling[i] for i in members)
        return DomainPlan(kind, name, budget_w, draw_at_tdp, draw, gpus, cap, path)

    def _impose(self, kind: str, name: str, members: Sequence[int], host_w: int,
                gpus_by_ceiling: dict[int, int], budget_w: Fraction, path: YamlPath) -> int:
        nodes, ceiling = self.nodes, self.ceiling
        label = f"{kind} {name}"
        cap = largest_cap(host_w, gpus_by_ceiling, math.floor(budget_w))
        lowest = host_w + sum(nodes[i].gpus * min(ceiling[i], nodes[i].gpu.min_cap_w)
                              for i in members if nodes[i].gpu)
        if cap is None or any(nodes[i].gpu and min(ceiling[i], cap) < nodes[i].gpu.min_cap_w
                              for i in members):
            self.problems.append(Problem(
                str(self.site.file), self.site.line_of(path),
                f"{label} is infeasible: budget {_kw(budget_w)} kW, but its "
                f"{len(members)} nodes need {_kw(lowest)} kW even at the lowest settable GPU "
                f"caps (hosts alone {_kw(host_w)} kW)",
            ))
        # After an infeasible domain, carry on at the lowest legal caps so that every
        # other infeasible domain is reported too.
        for i in members:
            gpu = nodes[i].gpu
            if gpu and ceiling[i] > (cap or 0):
                ceiling[i] = max(cap or 0, min(ceiling[i], gpu.min_cap_w))
                self.capped_by[i] = label
        return cap if cap is not None else 0


def compile_budget(site: Site) -> Plan:
    """Compile the site's budgets into caps; raise InfeasibleSiteError naming each failing domain."""
    compiler = _Compiler(site)
    index = {id(node): i for i, node in enumerate(compiler.nodes)}
    racks: list[DomainPlan] = []
    containers: list[DomainPlan] = []
    for container in site.containers:
        container_members: list[int] = []
        for rack in container.racks:
            members = [index[id(node)] for node in rack.nodes]
            container_members.extend(members)
            budget = Fraction(rack.power_kw) * 1000 if rack.power_kw is not None else None
            racks.append(compiler.domain("rack", rack.qualified_name, members, budget, rack.path))
        budget = container_budget_w(Fraction(container.power_kw), Fraction(container.cooling_kw))
        containers.append(compiler.domain("container", container.name, container_members,
                                          budget, container.path))
    site_domain = compiler.domain("site", site.name, range(len(compiler.nodes)),
                                  it_budget_w(site), ("spec", "power"))
    if compiler.problems:
        raise InfeasibleSiteError(compiler.problems)
    node_plans = tuple(
        NodePlan(node, compiler.ceiling[i] if node.gpus else None, compiler.capped_by[i])
        for i, node in enumerate(compiler.nodes)
    )
    return Plan(site, site_domain, tuple(containers), tuple(racks), node_plans)


def kw(watts: Fraction | int) -> Decimal:
    """Watts as kW rounded half-even to 3 decimals, computed exactly."""
    fraction = Fraction(watts) / 1000
    exact = Decimal(fraction.numerator) / Decimal(fraction.denominator)
    return exact.quantize(Decimal("0.001"), rounding=ROUND_HALF_EVEN)


def _kw(watts: Fraction | int) -> str:
    return str(kw(watts))
