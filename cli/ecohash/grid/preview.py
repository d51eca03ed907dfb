"""The curtailment dry run: what an event would set, draw and keep, as data and as a table.

Nothing is contacted. What the cut saves against measured draw is shown only from draws
the caller passes (`--measured FILE`); otherwise the dry run says it did not read them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ecohash.budget import Plan, kw
from ecohash.errors import InvalidInputError
from ecohash.grid.rule import MW, Solution, duration_text, expected_savings_w
from ecohash.grid.throughput import percent, throughput_kept
from ecohash.paths import source_path

ESTIMATE = "ESTIMATE"
NOT_READ = "measured draw: not read (dry run offline)"


@dataclass(frozen=True)
class Duration:
    """How long an event lasts: `length` None means until released; `why` says where it came from."""

    length: timedelta | None
    why: str  # "--for", "program ers-10's max_hours", or "" (until released)

    @property
    def text(self) -> str:
        if self.length is None:
            return "until released"
        return f"{duration_text(self.length)} ({self.why})"


def read_measured(path: Path) -> dict[str, list[float]]:
    """A `--measured` file: a JSON object of node name to a list of draws, W, one per GPU."""
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInputError(f"{path}: cannot read measured draw: "
                                f"{getattr(error, 'strerror', None) or error}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInputError(f"{path}:{error.lineno}: not JSON: {error.msg}") from None
    shape = "a JSON object of node name to a list of draws in W, one per GPU"
    if not isinstance(data, dict):
        raise InvalidInputError(f"{path}: measured draw must be {shape}")
    for node, draws in data.items():
        if not isinstance(draws, list) or not all(
                isinstance(d, int | float) and not isinstance(d, bool) and math.isfinite(d) and d >= 0
                for d in draws):
            raise InvalidInputError(f"{path}: node {node!r}: measured draw must be a list of "
                                    "watts >= 0, one per GPU")
    return {node: [float(d) for d in draws] for node, draws in data.items()}


def _mw(watts: Fraction | int) -> float:
    """MW to the watt, for JSON."""
    return float(Fraction(round(Fraction(watts)), MW))


def _kw(watts: Fraction | int) -> float:
    return float(kw(watts))


def _caps_by_model(plan: Plan, solution: Solution, container: str) -> list[dict[str, Any]]:
    counts: dict[tuple[str, int, int, bool], int] = {}
    for node_plan in plan.nodes:
        node = node_plan.node
        if node.container != container or node.name not in solution.caps_w:
            continue
        key = (node.sku.gpu or "", solution.planned_w[node.name], solution.caps_w[node.name],
               node.name in solution.held_w)
        counts[key] = counts.get(key, 0) + node.gpus
    return [{"gpu_model": model, "gpus": gpus, "planned_gpu_cap_w": planned, "gpu_cap_w": cap, "held": held}
            for (model, planned, cap, held), gpus in sorted(counts.items())]


def preview_data(plan: Plan, solution: Solution, duration: Duration, program: str | None = None,
                 measured: Mapping[str, list[float]] | None = None) -> dict[str, Any]:
    """The dry run as data: what `curtail --dry-run --json` prints."""
    site, target = plan.site, solution.target
    kept_of, site_kept = throughput_kept(plan, solution)
    draw_before: dict[str, int] = {}
    draw_after: dict[str, int] = {}
    for node_plan in plan.nodes:
        node = node_plan.node
        cap = solution.caps_w.get(node.name, 0)
        draw_before[node.container] = draw_before.get(node.container, 0) + node_plan.draw_w
        draw_after[node.container] = draw_after.get(node.container, 0) + node.host_w + node.gpus * cap
    measured_data = None
    if measured is not None:
        savings = expected_savings_w(solution, measured)
        measured_data = {"nodes": len(measured), "gpus": sum(len(d) for d in measured.values()),
                         "savings_kw": round(savings / 1000, 3)}
    return {
        "site": site.name,
        "file": source_path(site.file),
        "target": target.label,
        "program": program,
        "target_mw": _mw(target.facility_w),
        "it_target_kw": _kw(target.it_w),
        "pue": float(solution.pue),
        "planned_facility_mw": _mw(solution.planned_facility_draw_w),
        "facility_draw_mw": _mw(solution.facility_draw_w),
        "planned_draw_kw": _kw(solution.planned_it_draw_w),
        "draw_kw": _kw(solution.it_draw_w),
        "infeasible": False,
        "changed": solution.changed,
        "binding_tier": solution.binding_tier,
        "binding_w": solution.binding_w,
        "tiers_at_floor": list(solution.tiers_at_floor),
        "duration_s": None if duration.length is None else int(duration.length.total_seconds()),
        "lasts": duration.text,
        "throughput_kept_pct": float(percent(site_kept.share)),
        "throughput_estimate": site_kept.estimate,
        "measured": measured_data,
        "containers": [
            {
                "name": container.name,
                "flex": container.flex,
                "gpus": kept_of[container.name].gpus,
                "planned_draw_kw": _kw(draw_before.get(container.name, 0)),
                "draw_kw": _kw(draw_after.get(container.name, 0)),
                "caps": _caps_by_model(plan, solution, container.name),
                "throughput_kept_pct": float(percent(kept_of[container.name].share)),
                "throughput_estimate": kept_of[container.name].estimate,
            }
            for container in site.containers
        ],
        "nodes": [
            {
                "name": n.node.name,
                "container": n.node.container,
                "gpu_model": n.node.sku.gpu,
                "gpus": n.node.gpus,
                "planned_gpu_cap_w": solution.planned_w[n.node.name],
                "gpu_cap_w": solution.caps_w[n.node.name],
                "held": n.node.name in solution.held_w,
            }
            for n in plan.nodes if n.node.name in solution.caps_w
        ],
    }


def _kept_text(share: float, estimate: bool) -> str:
    return f"{share:.1f}%" + (f" {ESTIMATE}" if estimate else "")


def print_preview(data: dict[str, Any], console: Console) -> None:
    """The dry run as a table for people, from preview_data's dict."""
    def line(text: str, style: str | None = None) -> None:
        console.print(text, style=style, markup=False, highlight=False, soft_wrap=True)

    line(f"Curtailment dry run: site {data['site']}  {data['file']}", style="bold")
    line(f"Target {data['target']}: facility draw <= {data['target_mw']:,.3f} MW, "
         f"IT draw <= {data['it_target_kw']:,.3f} kW (÷ PUE {data['pue']:g}); lasts {data['lasts']}")
    table = Table("Container", "Flex", "GPU caps W (before → after)", "Draw kW (before → after)",
                  "Throughput kept")
    for column in (table.columns[1], table.columns[3], table.columns[4]):
        column.justify = "right"
    for container in data["containers"]:
        caps = "\n".join(f"{c['gpu_model']} {c['planned_gpu_cap_w']} → {c['gpu_cap_w']} ×{c['gpus']}"
                         + (" (held: unreachable)" if c["held"] else "")
                         for c in container["caps"]) or "no GPUs"
        table.add_row(container["name"], str(container["flex"]), caps,
                      f"{container['planned_draw_kw']:,.3f} → {container['draw_kw']:,.3f}",
                      _kept_text(container["throughput_kept_pct"], container["throughput_estimate"]))
    table.add_section()
    table.add_row("site", "", "", f"{data['planned_draw_kw']:,.3f} → {data['draw_kw']:,.3f}",
                  _kept_text(data["throughput_kept_pct"], data["throughput_estimate"]), style="bold")
    console.print(table)
    line(f"Facility draw {data['planned_facility_mw']:,.3f} MW planned → "
         f"{data['facility_draw_mw']:,.3f} MW, target {data['target_mw']:,.3f} MW: {_how(data)}")
    measured = data["measured"]
    if measured is None:
        why = data.get("measured_not_read")
        said = f"measured draw: not read ({why})" if why else NOT_READ
        line(f"{said[0].upper()}{said[1:]}: what the cut should save is not known (--measured FILE "
             "gives it). Caps bound the draw with every GPU flat out.")
    else:
        line(f"What the cut should save against measured draw: {measured['savings_kw']:,.3f} kW, the "
             f"draw above the new caps of the {measured['gpus']} GPUs measured on "
             f"{measured['nodes']} of {len(data['nodes'])} GPU nodes.")
    if data["throughput_estimate"]:
        line(f"{ESTIMATE}: throughput from a curve not measured on that GPU model (docs/catalog.md).")


def _how(data: dict[str, Any]) -> str:
    if data["binding_tier"] is None:
        return "nothing to do, the draw at the current caps is within the target."
    floors = "".join(f"flex {tier} at its floors, " for tier in data["tiers_at_floor"])
    return f"met with {floors}flex {data['binding_tier']} at {data['binding_w']} W."
