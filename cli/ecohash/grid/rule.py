"""The curtailment rule: from a grid target to a GPU cap per node, exactly.

The rule (docs/grid.md has it with a worked example):

- the facility target T, in watts: `--to MW` gives T = MW x 10^6; `--by MW` gives
  T = planned facility draw - MW x 10^6; `--by P%` gives T = planned facility draw x
  (1 - P/100). The planned facility draw is the plan's IT draw at its caps x pue, and
  the IT target is B = T / pue.
- if the IT draw at the current caps (the plan's, or a held node's) is within B, nothing
  changes. Otherwise, for tier k = 3, 2, 1 in turn: the GPUs of flex-k containers are
  active and every other GPU keeps its current cap; find the largest whole W >= 0 with
  sum(host_w) + sum(gpus x cap) <= B, each active GPU's cap being
  max(floor, min(planned cap, W)) and floor = min(min_cap_w, planned cap). If such a W
  exists those caps are final; otherwise the tier goes to its floors and the next tier
  is tried. Flex 0 GPUs are never active, nor are held nodes.
- if tier 1 at its floors still exceeds B, caps cannot reach the target.

Caps bound the draw with every GPU flat out: compliance cannot rest on today's demand.
The search for W is the budget compiler's own (budget.largest_cap): one rule for "the
largest cap that fits", in one place. All arithmetic is on integers and Fractions.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal
from fractions import Fraction

from ecohash.budget import NodePlan, Plan, largest_cap
from ecohash.errors import InvalidInputError
from ecohash.inventory import messages
from ecohash.inventory.model import CurtailmentProgram
from ecohash.inventory.site import Site

MW = 10**6
# The tiers in the order they give power back; flex 0 never does.
TIERS = (3, 2, 1)


class CurtailmentInfeasibleError(InvalidInputError):
    """GPU caps cannot bring the site's draw down to the target."""


@dataclass(frozen=True)
class Target:
    facility_w: Fraction  # T: the facility draw to stay within, W
    it_w: Fraction  # B = T / pue
    label: str  # "to 9.5 MW", "by 2 MW", "by 20%", "program ers-10 (to 3 MW)"


@dataclass(frozen=True)
class Solution:
    target: Target
    planned_w: dict[str, int]  # GPU node -> its planned cap
    caps_w: dict[str, int]  # GPU node -> its cap during the event (planned when untouched)
    it_draw_w: int  # sum of host_w + gpus x cap over every node of the site, after
    planned_it_draw_w: int
    tiers_at_floor: tuple[int, ...]  # tiers whose GPUs all went to their floors
    binding_tier: int | None  # the tier whose W met the target; None when nothing changed
    binding_w: int | None
    held_w: dict[str, int] = field(default_factory=dict)  # nodes kept at a cap, not solved for
    pue: Fraction = Fraction(1)

    @property
    def changed(self) -> bool:
        return self.caps_w != self.planned_w

    @property
    def facility_draw_w(self) -> Fraction:
        return self.it_draw_w * self.pue

    @property
    def planned_facility_draw_w(self) -> Fraction:
        return self.planned_it_draw_w * self.pue


def planned_facility_w(plan: Plan) -> Fraction:
    """The plan's IT draw at its caps x pue: what `--by` counts down from."""
    return plan.site_domain.draw_w * Fraction(plan.site.power.pue)


def target_for(plan: Plan, *, to_mw: Decimal | int | None = None, by_mw: Decimal | int | None = None,
               by_pct: Decimal | int | None = None, label_prefix: str = "") -> Target:
    """The target for exactly one of to_mw, by_mw and by_pct (exact decimals)."""
    given = [(key, value) for key, value in (("to_mw", to_mw), ("by_mw", by_mw), ("by_pct", by_pct))
             if value is not None]
    if len(given) != 1:
        raise InvalidInputError("a curtailment target needs exactly one of to_mw, by_mw or by_pct")
    (key, value), = given
    amount = Fraction(value)
    planned = planned_facility_w(plan)
    if amount <= 0 or (key == "by_pct" and amount >= 100):
        bound = "between 0 and 100 (exclusive)" if key == "by_pct" else "greater than 0"
        raise InvalidInputError(f"{key} must be {bound} (got {value})")
    if key == "to_mw":
        facility_w, core = amount * MW, f"to {value} MW"
    elif key == "by_mw":
        facility_w, core = planned - amount * MW, f"by {value} MW"
        if facility_w <= 0:
            raise InvalidInputError(f"by {value} MW is more than the planned facility draw of "
                                    f"{mw_text(planned)} MW")
    else:
        facility_w, core = planned * (1 - amount / 100), f"by {value}%"
    label = f"{label_prefix} ({core})" if label_prefix else core
    return Target(facility_w, facility_w / Fraction(plan.site.power.pue), label)


def program_target(plan: Plan, program: CurtailmentProgram) -> Target:
    """The target of one of the site's curtailment programs."""
    return target_for(plan, to_mw=program.to_mw, by_mw=program.by_mw, by_pct=program.by_pct,
                      label_prefix=f"program {program.name}")


def find_program(site: Site, name: str) -> CurtailmentProgram:
    """The site's curtailment program called `name`."""
    programs = {program.name: program for program in site.curtailment_programs}
    if name in programs:
        return programs[name]
    if not programs:
        raise InvalidInputError(f"site {site.name} has no curtailment program {name!r}: it defines "
                                "none (spec.power.curtailment.programs)")
    raise InvalidInputError(f"site {site.name} has no curtailment program {name!r}"
                            + messages.suggest(name, sorted(programs)))


def solve(plan: Plan, target: Target, held_w: Mapping[str, int] | None = None) -> Solution:
    """The caps that bring the site within the target; raise CurtailmentInfeasibleError.

    held_w keeps nodes (unreachable ones) at a cap: they are in the draw, never active.
    """
    held = dict(held_w or {})
    site = plan.site
    flex_of = {container.name: container.flex for container in site.containers}
    gpu_plans = [n for n in plan.nodes if n.gpu_cap_w is not None and n.node.gpus]
    unknown = sorted(set(held) - {n.node.name for n in gpu_plans})
    if unknown:
        raise InvalidInputError(f"held node {unknown[0]!r} is not a GPU node of site {site.name}")
    planned = {n.node.name: n.gpu_cap_w for n in gpu_plans if n.gpu_cap_w is not None}
    caps = {name: held.get(name, cap) for name, cap in planned.items()}
    all_host_w = sum(n.node.host_w for n in plan.nodes)

    def it_draw() -> int:
        return all_host_w + sum(n.node.gpus * caps[n.node.name] for n in gpu_plans)

    budget = math.floor(target.it_w)  # draws are whole watts
    pue = Fraction(site.power.pue)
    at_floor: list[int] = []
    binding_tier = binding_w = None
    if it_draw() > budget:
        for tier in TIERS:
            active = [n for n in gpu_plans
                      if flex_of[n.node.container] == tier and n.node.name not in held]
            if not active:
                continue
            active_names = {n.node.name for n in active}
            fixed_w = all_host_w + sum(n.node.gpus * caps[n.node.name] for n in gpu_plans
                                       if n.node.name not in active_names)
            gpus_by_bounds: dict[tuple[int, int], int] = {}
            for n in active:
                bounds = (_floor(n), planned[n.node.name])
                gpus_by_bounds[bounds] = gpus_by_bounds.get(bounds, 0) + n.node.gpus
            w = largest_cap(fixed_w, gpus_by_bounds, budget)
            for n in active:
                caps[n.node.name] = _floor(n) if w is None else max(_floor(n), min(planned[n.node.name], w))
            if w is not None:
                binding_tier, binding_w = tier, w
                break
            at_floor.append(tier)
        else:
            lowest = it_draw() * pue
            raise CurtailmentInfeasibleError(
                f"site {site.name} cannot reach {mw_text(target.facility_w)} MW by GPU caps "
                f"({target.label}): the lowest facility draw caps can reach is "
                f"{mw_text(lowest, ROUND_CEILING)} MW"
            )
    return Solution(target, planned, caps, it_draw(), plan.site_domain.draw_w, tuple(at_floor),
                    binding_tier, binding_w, held, pue)


def at_floors(plan: Plan, tiers: tuple[int, ...] = TIERS) -> Solution:
    """Every GPU of the given flex tiers at its floor, every other at its planned cap: the
    most those tiers can give back by caps alone (what `solve` reaches for them at worst).

    Its target is the draw it reaches, so the Solution reads as any other: its IT draw,
    its facility draw, and for grid.throughput what each GPU keeps.
    """
    site = plan.site
    tiers = tuple(tier for tier in TIERS if tier in tiers)  # flex 0 never gives power back
    flex_of = {container.name: container.flex for container in site.containers}
    gpu_plans = [n for n in plan.nodes if n.gpu_cap_w is not None and n.node.gpus]
    planned = {n.node.name: n.gpu_cap_w for n in gpu_plans if n.gpu_cap_w is not None}
    caps = {n.node.name: _floor(n) if flex_of[n.node.container] in tiers else planned[n.node.name]
            for n in gpu_plans}
    it_draw = (sum(n.node.host_w for n in plan.nodes)
               + sum(n.node.gpus * caps[n.node.name] for n in gpu_plans))
    pue = Fraction(site.power.pue)
    # As solve says it: a tier without GPUs is passed over, not "at its floors".
    at_floor = tuple(tier for tier in tiers if any(flex_of[n.node.container] == tier for n in gpu_plans))
    label = ", ".join(f"flex {tier}" for tier in at_floor) + " at floors" if at_floor else "no tier"
    return Solution(Target(it_draw * pue, Fraction(it_draw), label), planned, caps, it_draw,
                    plan.site_domain.draw_w, at_floor, None, None, {}, pue)


def _floor(node_plan: NodePlan) -> int:
    """min(min_cap_w, planned cap): the driver refuses lower, and no tier goes above plan."""
    gpu, cap = node_plan.node.gpu, node_plan.gpu_cap_w
    assert gpu is not None and cap is not None  # solve() passes GPU nodes only
    return min(gpu.min_cap_w, cap)


def expected_savings_w(solution: Solution, measured_draw_w_by_node: Mapping[str, list[float]]) -> float:
    """What the cut should save against measured draw: sum of max(0, draw - cap) per GPU.

    A cap saves only where a GPU draws more than it. Nodes not measured count nothing.
    """
    saved = 0.0
    for node, draws in measured_draw_w_by_node.items():
        if node not in solution.caps_w:
            raise InvalidInputError(f"measured draw names {node!r}, which is not a GPU node of the site")
        cap = solution.caps_w[node]
        saved += sum(max(0.0, draw - cap) for draw in draws)
    return saved


_DURATION = re.compile(r"(?:([0-9]{1,6})h)?(?:([0-9]{1,6})m)?(?:([0-9]{1,8})s)?")
DURATION_RULE = "a duration such as 90s, 15m, 3h or 1h30m"


def parse_duration(text: str) -> timedelta:
    """'90s', '15m', '3h', '1h30m' (and '0') as a timedelta; InvalidInputError otherwise."""
    match = _DURATION.fullmatch(text)
    if text == "0":
        return timedelta(0)
    if not text or match is None:
        raise InvalidInputError(f"{text!r} is not {DURATION_RULE}")
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return timedelta(hours=hours, minutes=minutes, seconds=seconds)


def duration_text(duration: timedelta) -> str:
    """A duration as parse_duration reads it: '1h30m', '90s' stays '1m30s'."""
    seconds = int(duration.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = "".join(f"{value}{unit}" for value, unit in ((hours, "h"), (minutes, "m"), (seconds, "s"))
                   if value)
    return text or "0s"


def mw(watts: Fraction | int, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """Watts as MW to 3 decimals (a kW), computed exactly."""
    fraction = Fraction(watts) / MW
    exact = Decimal(fraction.numerator) / Decimal(fraction.denominator)
    return exact.quantize(Decimal("0.001"), rounding=rounding)


def mw_text(watts: Fraction | int, rounding: str = ROUND_HALF_EVEN) -> str:
    return str(mw(watts, rounding))
