"""The fleet summary for people: a text table per region, and a self-contained page.

Both only present fleet_data's dict (summary.py decides every figure). The page follows
the provision report's rules (ecohash.pages: autoescaped, strict): inline
style, the chart as inline SVG, no scripts, no links out; it is laid out to be read on a
phone as well (one column, tables scroll inside their box, the chart scales to the width).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from jinja2 import Environment
from rich.console import Console
from rich.table import Table

from ecohash.fleet.summary import NO_REGION, NO_STATE
from ecohash.pages import made_now, page_environment

TEMPLATE_NAME = "fleet.html.j2"
NO_DRIFT = "no drift check here"

# Chart geometry in SVG user units: a row per site of three bars on one MW scale; the
# SVG scales to the page's width, so these only set proportions.
CHART_WIDTH = 360
CHART_BAR_SPACE = 250
CHART_LABEL_HEIGHT = 16
CHART_BAR_HEIGHT = 10
CHART_BAR_GAP = 3
CHART_ROW_GAP = 10
CHART_BARS = (("budget", "budget_mw", "budget (grid after reserve)"),
              ("draw", "draw_mw", "planned draw at caps"),
              ("shed", "shed_mw", "sheddable by caps"))


def region_name(region: str | None) -> str:
    return NO_REGION if region is None else region


def site_label(site: Mapping[str, Any]) -> str:
    """The site's name, marked when it is the lab or built from a SIMULATED standard."""
    marks = (["lab"] if site["lab"] else []) + (["SIMULATED"] if site["simulated"] else [])
    name: str = site["site"]
    return name + (f" ({', '.join(marks)})" if marks else "")


def models_text(models: list[Mapping[str, Any]]) -> str:
    return ", ".join(f"{m['gpus']} × {m['gpu_model']} on {m['nodes']} nodes" if m["gpu_model"]
                     else f"{m['nodes']} without GPU" for m in models) or "no nodes"


def kept_text(row: Mapping[str, Any]) -> str:
    return f"{row['throughput_kept_pct']:.1f}%" + (" ESTIMATE" if row["throughput_estimate"] else "")


def shed_text(meter: Mapping[str, Any]) -> str:
    """'0.522 MW to 0.877 MW: flex 2 0.108, flex 1 0.414', throughput kept beside it."""
    if not meter["tiers"]:
        return "nothing: every container is flex 0"
    tiers = ", ".join(f"flex {t['flex']} {t['shed_mw']:,.3f}" for t in meter["tiers"])
    return (f"{meter['shed_mw']:,.3f} MW ({tiers}), down to {meter['floor_mw']:,.3f} MW; "
            f"keeps {kept_text(meter)} of throughput")


def curtailment_text(curtailment: Mapping[str, Any] | None) -> str:
    if curtailment is None:
        return "none"
    return (f"{curtailment['event']} {curtailment['state']}: {curtailment['target']} "
            f"({len(curtailment['gpu_cap_w_by_node'])} node(s) below plan)")


def rollout_text(rollout: Mapping[str, Any] | None) -> str:
    if rollout is None:
        return NO_STATE
    pct = "-" if rollout["current_pct"] is None else f"{rollout['current_pct']:.1f}%"
    return f"{rollout['current']} of {rollout['nodes']} nodes current ({pct})"


def provision_text(rollout: Mapping[str, Any] | None) -> str:
    if rollout is None:
        return NO_STATE
    last = rollout["last_provision"]
    if last is None:
        return "no provision run recorded"
    return (f"{last['run']} {last['outcome']}: {last['passed']} passed, {last['failed']} failed, "
            f"{last['skipped']} skipped")


def drift_text(drift: Mapping[str, Any] | None) -> str:
    if drift is None:
        return NO_DRIFT
    counts = ", ".join(f"{count} {status}" for status, count in (drift["counts"] or {}).items())
    return f"{drift['run']}: {'drifted' if drift['drifted'] else 'no drift'} ({counts})"


def totals_rollout_text(rollout: Mapping[str, Any]) -> str:
    missing = rollout["sites_without_state"]
    without = f"; {missing} site(s): {NO_STATE}" if missing else ""
    if not rollout["sites_with_state"]:
        return NO_STATE
    pct = "-" if rollout["current_pct"] is None else f"{rollout['current_pct']:.1f}%"
    return f"{rollout['current']} of {rollout['nodes']} nodes current ({pct}){without}"


def headline(data: Mapping[str, Any]) -> str:
    totals = data["totals"]
    invalid = f", {len(data['invalid'])} invalid (not summed)" if data["invalid"] else ""
    return (f"Fleet: {totals['sites']} site(s) in {len(data['regions'])} region(s){invalid}: "
            f"{totals['nodes']:,} nodes, {totals['gpus']:,} GPUs")


def print_fleet(data: Mapping[str, Any], console: Console) -> None:
    """The summary for people: one table of sites with each region's and the fleet's totals,
    then what each site's row cannot hold, then the invalid sites."""
    def line(text: str = "", style: str | None = None) -> None:
        console.print(text, style=style, markup=False, highlight=False, soft_wrap=True)

    line(headline(data), style="bold")
    table = Table("Site", "Nodes", "GPUs", "IT budget kW", "Draw at caps kW", "Headroom kW",
                  "Meter budget MW", "Meter draw MW", "Shed by caps MW", "Kept", "Nodes current")
    for column in table.columns[1:10]:
        column.justify = "right"
    for region in data["regions"]:
        if len(region["sites"]) == 1:
            # A region of one site: its totals are the site's own row, so that row stands for both.
            (site,) = region["sites"]
            _add_row(table, f"{site_label(site)}, {region_name(region['region'])}", site,
                     rollout_text(site["rollout"]))
            continue
        for site in region["sites"]:
            _add_row(table, site_label(site), site, rollout_text(site["rollout"]))
        totals = region["totals"]
        _add_row(table, f"{region_name(region['region'])}: {totals['sites']} site(s)", totals,
                 totals_rollout_text(totals["rollout"]), style="bold")
        table.add_section()
    totals = data["totals"]
    _add_row(table, f"fleet: {totals['sites']} site(s)", totals, totals_rollout_text(totals["rollout"]),
             style="bold")
    console.print(table)
    for region in data["regions"]:
        for site in region["sites"]:
            line()
            line(f"{site_label(site)}, region {region_name(site['region'])}  {site['file']}", style="bold")
            line(f"  GPUs: {models_text(site['models'])}")
            line(f"  shed by caps alone: {shed_text(site['meter'])}")
            line(f"  curtailment: {curtailment_text(site['curtailment'])}")
            line(f"  node standard {site['standard']['name']}: {rollout_text(site['rollout'])}")
            line(f"  last provision: {provision_text(site['rollout'])}")
            line(f"  last drift check: {drift_text(site['drift'])}")
    line()
    line(f"Fleet: GPUs {models_text(totals['models'])}; shed by caps alone {shed_text(totals['meter'])}; "
         f"curtailments: {', '.join(totals['curtailments']) or 'none'}; "
         f"standards: {', '.join(totals['standards']) or 'none'}", style="bold")
    if data["invalid"]:
        line()
        line("Invalid sites (not summed; `ecohash validate FILE` lists every problem):", style="bold")
        for bad in data["invalid"]:
            more = f" (and {bad['problems'] - 1} more)" if bad["problems"] > 1 else ""
            line(f"  {bad['error']}{more}")


def _add_row(table: Table, label: str, row: Mapping[str, Any], rollout: str, style: str | None = None
             ) -> None:
    meter = row["meter"]
    table.add_row(label, f"{row['nodes']:,}", f"{row['gpus']:,}", f"{row['it_budget_kw']:,.3f}",
                  f"{row['draw_kw']:,.3f}", f"{row['headroom_kw']:,.3f}", f"{meter['budget_mw']:,.3f}",
                  f"{meter['draw_mw']:,.3f}", f"{meter['shed_mw']:,.3f}", kept_text(meter), rollout,
                  style=style)


def chart(data: Mapping[str, Any]) -> dict[str, Any]:
    """Budget, draw and sheddable power per site, MW at the meter on one scale, as SVG geometry."""
    sites = [site for region in data["regions"] for site in region["sites"]]
    scale = max([site["meter"][key] for site in sites for _, key, _ in CHART_BARS] + [0.0])
    rows, y = [], 0.0
    for site in sites:
        bars = []
        bar_y = y + CHART_LABEL_HEIGHT
        for kind, key, label in CHART_BARS:
            value = site["meter"][key]
            width = 0.0 if scale <= 0 else round(value / scale * CHART_BAR_SPACE, 1)
            bars.append({"kind": kind, "y": round(bar_y, 1), "width": width, "value": value,
                         "label": label, "text_x": round(width + 4, 1)})
            bar_y += CHART_BAR_HEIGHT + CHART_BAR_GAP
        rows.append({"label": site_label(site), "region": region_name(site["region"]),
                     "text_y": round(y + CHART_LABEL_HEIGHT - 4, 1), "bars": bars})
        y = bar_y + CHART_ROW_GAP
    return {"width": CHART_WIDTH, "height": max(round(y), 1), "bar_height": CHART_BAR_HEIGHT,
            "rows": rows, "legend": [(kind, label) for kind, _, label in CHART_BARS]}


def render_html(data: Mapping[str, Any]) -> str:
    """The self-contained page: inline style, an inline SVG chart, no scripts, no links out."""
    return _environment().get_template(TEMPLATE_NAME).render(
        data=data, headline=headline(data), chart=chart(data), no_state=NO_STATE,
        made=made_now("ecohash fleet"))


@cache
def _environment() -> Environment:
    environment = page_environment()
    environment.filters.update(
        region=region_name, site_label=site_label, models=models_text, kept=kept_text, shed=shed_text,
        curtailment=curtailment_text, rollout=rollout_text, provision=provision_text, drift=drift_text,
        totals_rollout=totals_rollout_text)
    return environment
