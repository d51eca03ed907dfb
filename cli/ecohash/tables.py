"""Plans and capacities as tables for people (rich); report.py has the same as data."""

from __future__ import annotations

from collections import Counter
from fractions import Fraction

from rich.console import Console
from rich.table import Table

from ecohash.budget import DomainPlan, NodePlan, Plan, it_budget_w, kw
from ecohash.capacity import Capacity
from ecohash.paths import source_path


def _kw(watts: Fraction | int | None) -> str:
    return "-" if watts is None else f"{kw(watts):,}"


def _caps(nodes: list[NodePlan]) -> str:
    """Distinct caps with their GPU counts and what set them: '612 W x32 (rack c01/r01)'."""
    gpus: Counter[tuple[str, int, str]] = Counter()
    for n in nodes:
        if n.gpu_cap_w is not None and n.node.sku.gpu:
            gpus[(n.node.sku.gpu, n.gpu_cap_w, n.capped_by or "TDP")] += n.node.gpus
    lines = [f"{model} {cap} W ×{count} ({why})"
             for (model, cap, why), count in sorted(gpus.items(), key=lambda i: (i[0][0], i[0][1]))]
    return "\n".join(lines) or "no GPUs"


def print_plan(plan: Plan, console: Console) -> None:
    site, power = plan.site, plan.site.power
    console.print(f"[bold]Site {site.name}[/bold]" + (f" ({site.region})" if site.region else "")
                  + f"  {source_path(site.file)}")
    console.print(
        f"IT budget {_kw(it_budget_w(site))} kW = {power.grid_mw} MW × (1 − {power.reserve_pct}%)"
        f" ÷ PUE {power.pue}"
    )
    table = Table("Container", "Cooling", "Budget kW", "Draw at TDP kW", "Draw at caps kW",
                  "Headroom kW", "GPUs", "GPU caps")
    for column in table.columns[2:7]:
        column.justify = "right"
    nodes_of: dict[str, list[NodePlan]] = {}
    for node_plan in plan.nodes:
        nodes_of.setdefault(node_plan.node.container, []).append(node_plan)
    for container, domain in zip(site.containers, plan.containers, strict=True):
        table.add_row(container.name, container.cooling, _kw(domain.budget_w),
                      _kw(domain.draw_at_tdp_w), _kw(domain.draw_w), _kw(domain.headroom_w),
                      str(domain.gpus), _caps(nodes_of.get(container.name, [])))
    total = plan.site_domain
    table.add_section()
    table.add_row("site", "", _kw(total.budget_w), _kw(total.draw_at_tdp_w), _kw(total.draw_w),
                  _kw(total.headroom_w), str(total.gpus), "", style="bold")
    console.print(table)
    binding = [d for d in (*plan.racks, *plan.containers, plan.site_domain) if d.cap_w is not None]
    if binding:
        console.print("Caps set by: " + "; ".join(_binding_summary(binding)))
    else:
        console.print("Every GPU runs at its TDP: no budget domain needs a cap.")


def _binding_summary(binding: list[DomainPlan]) -> list[str]:
    """'rack c01/r01 at 612 W', or '36 racks at 612 W (c01/r01 ... c03/r12)' when many agree."""
    groups: dict[tuple[str, int | None], list[str]] = {}
    for domain in binding:
        groups.setdefault((domain.kind, domain.cap_w), []).append(domain.name)
    parts: list[str] = []
    for (kind, cap), names in groups.items():
        if len(names) <= 3:
            parts.extend(f"{kind} {name} at {cap} W" for name in names)
        else:
            parts.append(f"{len(names)} {kind}s at {cap} W ({names[0]} … {names[-1]})")
    return parts


def print_capacity(room: Capacity, console: Console) -> None:
    at = f" at {room.cap_w} W per GPU" if room.cap_w is not None else ""
    console.print(f"[bold]Room for more {room.sku_name}[/bold] on site {room.plan.site.name}{at}: "
                  f"{room.node_draw_w:,} W per node")
    table = Table("Container", "Headroom kW", "More nodes")
    for column in table.columns[1:]:
        column.justify = "right"
    for container in room.containers:
        table.add_row(container.name, _kw(container.headroom_w), str(container.nodes))
    table.add_section()
    table.add_row("site", _kw(room.site_headroom_w), str(room.site_nodes), style="bold")
    console.print(table)
    console.print(f"The site budget alone has room for {room.grid_nodes} more, were containers added.")
