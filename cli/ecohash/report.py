"""Plans and capacities as plain data: what `--json` prints and bots read.

Keys are stable; kW are rounded half-even to 3 decimals, caps are whole watts.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from ecohash.budget import DomainPlan, Plan, kw
from ecohash.capacity import Capacity
from ecohash.paths import source_path


def _kw(watts: Fraction | int | None) -> float | None:
    return None if watts is None else float(kw(watts))


def _domain(domain: DomainPlan) -> dict[str, Any]:
    return {
        "budget_kw": _kw(domain.budget_w),
        "draw_at_tdp_kw": _kw(domain.draw_at_tdp_w),
        "draw_kw": _kw(domain.draw_w),
        "headroom_kw": _kw(domain.headroom_w),
        "gpus": domain.gpus,
        "gpu_cap_w": domain.cap_w,
    }


def site_figures(plan: Plan) -> dict[str, Any]:
    """The site-wide part of plan_data: what `ecohash fleet` sums."""
    return {
        "site": plan.site.name,
        "file": source_path(plan.site.file),
        "it_budget_kw": _kw(plan.site_domain.budget_w),
        "draw_at_tdp_kw": _kw(plan.site_domain.draw_at_tdp_w),
        "draw_kw": _kw(plan.site_domain.draw_w),
        "headroom_kw": _kw(plan.site_domain.headroom_w),
        "gpus": plan.site_domain.gpus,
        "gpu_cap_w": plan.site_domain.cap_w,
    }


def plan_data(plan: Plan) -> dict[str, Any]:
    site = plan.site
    # plan.racks follows the site's container and rack order.
    rack_plans = iter(plan.racks)
    racks_of = {c.name: [{"name": r.name, **_domain(next(rack_plans))} for r in c.racks]
                for c in site.containers}
    return {
        **site_figures(plan),
        "containers": [
            {
                "name": container.name,
                "cooling": container.cooling,
                **_domain(c),
                "racks": racks_of[c.name],
            }
            for container, c in zip(site.containers, plan.containers, strict=True)
        ],
        "nodes": [
            {
                "name": n.node.name,
                "container": n.node.container,
                "rack": n.node.rack,
                "sku": n.node.sku_name,
                "gpu_model": n.node.sku.gpu,
                "gpus": n.node.gpus,
                "gpu_cap_w": n.gpu_cap_w,
                "draw_w": n.draw_w,
                "capped_by": n.capped_by,
                "mgmt_ip": str(n.node.mgmt_ip),
            }
            for n in plan.nodes
        ],
    }


def capacity_data(room: Capacity) -> dict[str, Any]:
    return {
        "site": room.plan.site.name,
        "sku": room.sku_name,
        "gpus_per_node": room.sku.gpus,
        "gpu_cap_w": room.cap_w,
        "node_draw_w": room.node_draw_w,
        "containers": [
            {"name": c.name, "headroom_kw": _kw(c.headroom_w), "nodes": c.nodes}
            for c in room.containers
        ],
        "site_headroom_kw": _kw(room.site_headroom_w),
        "nodes": room.site_nodes,
        "grid_nodes": room.grid_nodes,
    }
