"""The event report: one curtailment's figures and evidence as JSON for tools and a page for people.

Written into the event's directory (report.json, report.html) when a curtail or a release
command ends. The page is meant to be sent to whoever asked for the cut (a utility, an
aggregator) and opened anywhere: it inlines its style, draws its timelines as SVG and
links to nothing. It says what was asked, what every node did, how fast, and what the
GPUs' own telemetry measured, per container and for the site, against the target.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment

from ecohash.atomic import write_atomic
from ecohash.budget import Plan
from ecohash.grid.events import ENFORCED, EVENT_SCHEMA, FAILED, HELD, Event, event_dir
from ecohash.grid.evidence import read_samples
from ecohash.grid.rule import Solution, Target
from ecohash.grid.throughput import throughput_kept
from ecohash.pages import made_now, page_environment
from ecohash.standard import load_standard, standard_file_of
from ecohash.summarise import by_container, summarised
from ecohash.timestamps import utc_time

# 2: caps named gpu_cap_w/planned_gpu_cap_w (gpu_caps_w per container), start_at/end_at,
# released_at as ISO text: the names of docs/json.md.
REPORT_SCHEMA = 2
TEMPLATE_NAME = "curtail-report.html.j2"

# Timeline geometry in SVG user units.
CHART_WIDTH = 900
CHART_HEIGHT = 230
MARGIN_LEFT = 70
MARGIN_RIGHT = 20
MARGIN_TOP = 14
MARGIN_BOTTOM = 34


def event_report(plan: Plan, event: Event) -> dict[str, Any]:
    """The report as a plain dict: the event, each container's figures, and the samples' timeline."""
    # In time order: rounds are written as they finish, and the sampler's can overlap the caps' read-backs.
    samples = sorted(read_samples(event_dir(event.site, event.id) / "samples.jsonl"), key=lambda s: s["t"])
    pue = Fraction(event.pue)
    kept, site_kept = _throughput(plan, event)
    containers = []
    for name, members in _by_container(event).items():
        planned = sum(node.host_w + node.gpus * node.planned_w for node in members.values())
        at_caps = sum(node.host_w + node.gpus * node.cap_w for node in members.values())
        containers.append({
            "name": name,
            "flex": next(iter(members.values())).flex,
            "nodes": len(members),
            "gpus": sum(node.gpus for node in members.values()),
            "planned_draw_w": planned,
            "event_draw_w": at_caps,
            "gpu_caps_w": sorted({node.cap_w for node in members.values()}),
            "planned_gpu_caps_w": sorted({node.planned_w for node in members.values()}),
            "throughput": _kept(kept.get(name)),
            "measured": [{"t": round(sample["t"] - event.start, 3),
                          "draw_w": sample["container_draw_w"].get(name)} for sample in samples
                         if name in sample.get("container_draw_w", {})],
        })
    nodes = [{"name": name, "container": node.container, "flex": node.flex, "gpus": node.gpus,
              "planned_gpu_cap_w": node.planned_w, "gpu_cap_w": node.cap_w, "status": node.status,
              "enforced_w": node.enforced_w, "reason": node.reason}
             for name, node in sorted(event.nodes.items(), key=_problems_first)]
    return {
        "schema": REPORT_SCHEMA,
        "event_schema": EVENT_SCHEMA,
        "site": event.site,
        "event": event.id,
        "state": event.state(),
        "simulated": _simulated(plan),
        "target": {"label": event.target_label, "facility_mw": event.target_mw,
                   "it_w": round(float(Fraction(event.target_it_w)), 1), "pue": float(pue)},
        "program": event.program,
        "start_at": event.start_time,
        "end_at": event.end_time,
        "replaced": event.replaced,
        "released_at": None if event.released_at is None else utc_time(event.released_at),
        "planned_it_draw_w": event.planned_it_draw_w,
        "event_it_draw_w": event.it_draw_w,
        "timings": {"verified_s": event.verified_s, "below_target_s": event.below_target_s,
                    "released_s": event.released_s},
        "held": [{"name": name, "reason": reason} for name, reason in sorted(event.held.items())],
        "failed": sorted(name for name, node in event.nodes.items() if node.status == FAILED),
        "problems": event.problems,
        "throughput": _kept(site_kept),
        "energy_mj": _energy(samples),
        "containers": containers,
        "nodes": nodes,
        "site_measured": [{"t": round(sample["t"] - event.start, 3), "phase": sample["phase"],
                           "it_draw_w": sample["it_draw_w"], "estimated": sample.get("estimated", [])}
                          for sample in samples],
    }


def _problems_first(item: tuple[str, Any]) -> tuple[bool, str]:
    name, node = item
    return node.status not in (FAILED, HELD), name


def _by_container(event: Event) -> dict[str, dict[str, Any]]:
    grouped: dict[str, dict[str, Any]] = {}
    for name, node in sorted(event.nodes.items()):
        grouped.setdefault(node.container, {})[name] = node
    return grouped


def _simulated(plan: Plan) -> bool:
    try:
        return load_standard(standard_file_of(plan.site)).simulated
    except Exception:  # noqa: BLE001 - the report of a cut that happened never fails on the standard
        return False


def _throughput(plan: Plan, event: Event) -> tuple[dict[str, Any], Any]:
    """Throughput kept per container and for the site, by the dry run's rule (grid.throughput)."""
    planned = {n.node.name: n.gpu_cap_w for n in plan.nodes
               if n.node.name in event.nodes and n.gpu_cap_w is not None}
    if set(planned) != set(event.nodes):
        return {}, None  # the site's plan changed since the event: its curves no longer apply
    caps = {name: event.nodes[name].cap_w for name in planned}
    target = Target(Fraction(event.target_facility_w), Fraction(event.target_it_w), event.target_label)
    solution = Solution(target, planned, caps, event.it_draw_w, event.planned_it_draw_w, (), None, None)
    return throughput_kept(plan, solution)


def _kept(kept: Any) -> dict[str, Any] | None:
    if kept is None or not kept.gpus:
        return None
    return {"share": round(float(kept.share), 4), "gpus": kept.gpus, "estimate": kept.estimate}


def _energy(samples: Sequence[Mapping[str, Any]]) -> float | None:
    """Energy the GPUs counted between the first and the last sample of each GPU, in MJ... as mJ."""
    first: dict[tuple[str, int], int] = {}
    last: dict[tuple[str, int], int] = {}
    for sample in samples:
        for node, entry in sample.get("nodes", {}).items():
            for gpu in entry.get("gpus", []):
                if gpu.get("energy_mj") is None:
                    continue
                key = (node, gpu["index"])
                first.setdefault(key, gpu["energy_mj"])
                last[key] = gpu["energy_mj"]
    if not last:
        return None
    return float(sum(last[key] - first[key] for key in last))


# --- The page ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    kind: str  # css class: measured, target, planned, allotment
    label: str
    points: str  # SVG polyline points


@dataclass(frozen=True)
class Timeline:
    title: str
    lines: tuple[Line, ...]
    ticks_x: tuple[tuple[float, str], ...]
    ticks_y: tuple[tuple[float, str], ...]
    marks: tuple[tuple[float, str], ...]  # vertical lines: x, label
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT
    left: int = MARGIN_LEFT
    top: int = MARGIN_TOP
    bottom: int = CHART_HEIGHT - MARGIN_BOTTOM
    right: int = CHART_WIDTH - MARGIN_RIGHT


def timeline(title: str, measured: Sequence[tuple[float, float]], levels: Sequence[tuple[str, str, float]],
             marks: Sequence[tuple[float, str]] = ()) -> Timeline:
    """A chart of measured W against constant levels (kind, label, W) over seconds since the start."""
    times = [t for t, _ in measured] + [t for t, _ in marks] + [0.0]
    start, end = min(times), max(times)
    if end - start < 1:
        end = start + 1
    top_w = max([w for _, w in measured] + [w for _, _, w in levels] + [1.0]) * 1.08
    left, right = MARGIN_LEFT, CHART_WIDTH - MARGIN_RIGHT
    top, bottom = MARGIN_TOP, CHART_HEIGHT - MARGIN_BOTTOM

    def x(t: float) -> float:
        return round(left + (t - start) / (end - start) * (right - left), 1)

    def y(w: float) -> float:
        return round(bottom - w / top_w * (bottom - top), 1)

    lines = [Line(kind, label, f"{x(start)},{y(w)} {x(end)},{y(w)}") for kind, label, w in levels]
    if measured:
        points = " ".join(f"{x(t)},{y(w)}" for t, w in measured)
        if len(measured) == 1:  # one sample still shows: a short segment
            points += f" {x(measured[0][0]) + 3},{y(measured[0][1])}"
        lines.append(Line("measured", "measured", points))
    ticks_x = tuple((x(t), _seconds(t)) for t in _ticks(start, end))
    ticks_y = tuple((y(w), f"{w / 1000:,.1f}") for w in _ticks(0, top_w))
    return Timeline(title, tuple(lines), ticks_x, ticks_y, tuple((x(t), label) for t, label in marks))


def _ticks(low: float, high: float, count: int = 6) -> list[float]:
    span = high - low
    raw = span / count
    magnitude = 10 ** len(str(int(raw))) / 10 if raw >= 1 else 1
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = (low // step) * step
    ticks = []
    value = first
    while value <= high:
        if value >= low:
            ticks.append(value)
        value += step
    return ticks


def _seconds(t: float) -> str:
    if abs(t) < 120:
        return f"{t:g} s"
    if abs(t) < 7200:
        return f"{t / 60:g} min"
    return f"{t / 3600:.1f} h"


def render_html(report: Mapping[str, Any]) -> str:
    """The self-contained page: inline style, inline SVG, no scripts, no links out."""
    marks = []
    timings = report["timings"]
    if timings["verified_s"] is not None:
        marks.append((timings["verified_s"], "caps verified"))
    if timings["below_target_s"] is not None:
        marks.append((timings["below_target_s"], "below target"))
    pue = report["target"]["pue"]
    site = timeline(
        f"Site {report['site']}: measured IT draw against the IT target (kW)",
        [(s["t"], s["it_draw_w"]) for s in report["site_measured"]],
        [("target", f"IT target ({report['target']['label']}, {report['target']['facility_mw']:g} MW at "
                    f"the meter / pue {pue:g})", report["target"]["it_w"]),
         ("planned", "planned draw at caps", report["planned_it_draw_w"]),
         ("allotment", "draw at the event's caps, every GPU flat out", report["event_it_draw_w"])],
        marks)
    containers = [
        timeline(f"Container {c['name']} (flex {c['flex']}, {c['gpus']} GPUs): measured draw (kW)",
                 [(m["t"], m["draw_w"]) for m in c["measured"] if m["draw_w"] is not None],
                 [("planned", "planned draw at caps", c["planned_draw_w"]),
                  ("allotment", "its share of the target: draw at the event's caps", c["event_draw_w"])],
                 marks)
        for c in report["containers"]
    ]
    shown, folds = _node_rows(report["nodes"])
    return _environment().get_template(TEMPLATE_NAME).render(
        report=report, site_chart=site, container_charts=containers, shown_nodes=shown, folds=folds,
        made=made_now(f"ecohash curtail {report['site']}, event {report['event']}"))


_Rows = list[Mapping[str, Any]]


def _node_rows(nodes: Sequence[Mapping[str, Any]]) -> tuple[_Rows, list[tuple[str, _Rows]]]:
    """The nodes shown as rows, and past FULL_UP_TO the rest folded per container under a
    line counting them by status (ecohash.summarise): every node that does not enforce its
    cap is a row of its own either way; report.json has every node."""
    if not summarised(len(nodes), show_all=False):
        return list(nodes), []
    shown = [node for node in nodes if node["status"] != ENFORCED]
    rest = [node for node in nodes if node["status"] == ENFORCED]
    folds = [(summary.line(), [node for node in rest if node["container"] == summary.container])
             for summary in by_container((node["name"], node["container"], node["status"]) for node in rest)]
    return shown, folds


def write_event_report(plan: Plan, event: Event) -> Path:
    """report.json and report.html into the event's directory; the page's path."""
    report = event_report(plan, event)
    directory = event_dir(event.site, event.id)
    html = render_html(report)  # rendered before either is written
    write_atomic(directory / "report.json", json.dumps(report, indent=1) + "\n")
    write_atomic(directory / "report.html", html)
    return directory / "report.html"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _kw(value: float | None) -> str:
    return "-" if value is None else f"{value / 1000:,.1f} kW"


def _duration(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


@cache
def _environment() -> Environment:
    environment = page_environment()
    environment.filters.update(percent=_percent, kw=_kw, duration=_duration)
    return environment
