"""Plans, capacities and rollout status as tables for people (rich); report.py has the same as data."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from rich.console import Console
from rich.table import Table

from ecohash.budget import DomainPlan, NodePlan, Plan, it_budget_w, kw
from ecohash.capacity import Capacity
from ecohash.paths import source_path
from ecohash.summarise import SEE_ALL, by_container, name_range, summarised


def _kw(watts: Fraction | int | None) -> str:
    return "-" if watts is None else f"{kw(watts):,}"


def _caps(nodes: list[NodePlan]) -> str:
    """Distinct caps with their GPU counts and what set them: '612 W ×64 (rack c01/r01)'.

    Domains that differ only in name (twelve racks of a container alike) are one line with
    their names as a range: 'h100-sxm 612 W ×64 each (12 racks c01/r01..c01/r12)'.
    """
    gpus: Counter[tuple[str, int, str]] = Counter()
    for n in nodes:
        if n.gpu_cap_w is not None and n.node.sku.gpu:
            gpus[(n.node.sku.gpu, n.gpu_cap_w, n.capped_by or "TDP")] += n.node.gpus
    alike: dict[tuple[str, int, str, int], list[str]] = {}
    for (model, cap, why), count in sorted(gpus.items(), key=lambda i: (i[0][0], i[0][1])):
        kind, _, name = why.partition(" ")  # 'rack c01/r01', 'container c04' or 'TDP'
        alike.setdefault((model, cap, kind, count), []).append(name)
    lines = []
    for (model, cap, kind, count), names in alike.items():
        each = " each" if len(names) > 1 else ""
        lines.append(f"{model} {cap} W ×{count}{each} ({name_range(kind, names) if names != [''] else kind})")
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
    """'rack c01/r01 at 612 W', or '36 racks c01/r01..c03/r12 at 612 W' when many agree."""
    groups: dict[tuple[str, int | None], list[str]] = {}
    for domain in binding:
        groups.setdefault((domain.kind, domain.cap_w), []).append(domain.name)
    return [f"{name_range(kind, names)} at {cap} W" for (kind, cap), names in groups.items()]


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


def print_status(data: Mapping[str, Any], console: Console, show_all: bool = False) -> None:
    """`ecohash status`'s table: a row per node, or past FULL_UP_TO nodes a row per container."""
    nodes = data["nodes"]
    counts = ", ".join(f"{count} {kind}" for kind, count in sorted(data["counts"].items()))
    if summarised(len(nodes), show_all):
        console.print(_status_by_container(nodes, title=f"{data['site']}: {counts}"))
        return
    table = Table(title=f"{data['site']}: {counts}")
    for column in ("node", "container", "status", "current", "fingerprint", "cap W", "when", "run", "reason"):
        table.add_column(column)
    for node in nodes:
        current = "yes" if node["current"] else ("no: " + ", ".join(node["changed"]) + " changed"
                                                if node["changed"] else "no")
        cap = str(node["gpu_cap_w"] or "-")
        if node["recorded_gpu_cap_w"] not in (None, node["gpu_cap_w"]):
            cap = f"{node['recorded_gpu_cap_w']} -> {cap}"
        table.add_row(node["name"], node["container"], node["status"], current,
                      (node["recorded_fingerprint"] or "-")[:12], cap, node["recorded_at"] or "-",
                      node["run"] or "-", node["reason"] or "")
    console.print(table)


def _status_by_container(nodes: list[Mapping[str, Any]], title: str) -> Table:
    """A row per container: its nodes by status, how many are not current, and the first of those."""
    stale = {summary.container: summary
             for summary in by_container((n["name"], n["container"], "") for n in nodes if not n["current"])}
    table = Table("container", "nodes", "by status", "not current", "first not current", title=title,
                  caption=f"{len(nodes)} nodes, a row per container; {SEE_ALL}")
    for summary in by_container((n["name"], n["container"], n["status"]) for n in nodes):
        behind = stale.get(summary.container)
        table.add_row(summary.container, str(summary.total), summary.counts_text(),
                      str(behind.total if behind else 0), behind.names_text() if behind else "")
    return table
