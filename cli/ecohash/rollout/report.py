"""The provision report: one run's outcome as JSON for tools, text for logs, a page for people.

`ecohash provision` gathers the report as a plain dict (versioned by REPORT_SCHEMA) and this
module only presents it; nothing here decides what passed. The page is meant to be opened
from a run directory copied off a site that has no network, so it inlines its style, draws
its charts as SVG and links to nothing.

A site has thousands of nodes, and what a reader needs is what went wrong: every form puts
the failed and unfinished nodes first, by name and reason, and folds the rest into a
summary per container (the page keeps their rows in a closed <details>; the text counts
them). report.json keeps every node whole, one per line: grep finds a node's record, and
the file is a fraction of an indented one (bench/report_size.py).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment

from ecohash.atomic import write_atomic
from ecohash.errors import EcohashError
from ecohash.pages import Made, made_now, page_environment
from ecohash.summarise import FULL_UP_TO, names_line, problem_lines, summarised

REPORT_SCHEMA = 2  # 2: a node's cap is gpu_cap_w (was cap_w)
TEMPLATE_NAME = "provision-report.html.j2"
FINGERPRINT_SHOWN = 12
_EMPTY_NODES = '\n  "nodes": []'

# Statuses that mean something went wrong on the node, so the page puts them first.
PROBLEM_STATUSES = ("failed", "unreachable", "interrupted")
NOT_RUN = "not-run"
KNOWN_STATUSES = (*PROBLEM_STATUSES, "passed", "skipped", NOT_RUN)

# Chart geometry in SVG user units; one chart per container, one row per bar.
CHART_LABEL_WIDTH = 190
CHART_BAR_SPACE = 340
CHART_VALUE_WIDTH = 130
CHART_ROW_HEIGHT = 28
CHART_BAR_HEIGHT = 18
CHART_AXIS_HEIGHT = 22


@dataclass(frozen=True)
class ReportFiles:
    """Where write_report put the three forms of one report."""

    json: Path
    html: Path
    text: Path


@dataclass(frozen=True)
class Bar:
    """One horizontal bar of a container's power chart, already placed on the chart's scale."""

    kind: str
    label: str
    kw: float | None
    width: float
    y: int
    value_label: str
    over_budget: bool

    @property
    def text_y(self) -> int:
        return self.y + CHART_BAR_HEIGHT - 5

    @property
    def value_x(self) -> float:
        return CHART_LABEL_WIDTH + self.width + 6


@dataclass(frozen=True)
class ContainerChart:
    """A container's budget, planned draw at caps and measured GPU draw on one kW scale."""

    name: str
    gpus: int
    nodes: int
    scale_kw: float
    bars: tuple[Bar, ...]
    budget_x: float | None

    label_width = CHART_LABEL_WIDTH
    bar_space = CHART_BAR_SPACE
    bar_height = CHART_BAR_HEIGHT

    @property
    def width(self) -> int:
        return CHART_LABEL_WIDTH + CHART_BAR_SPACE + CHART_VALUE_WIDTH

    @property
    def axis_y(self) -> int:
        return len(self.bars) * CHART_ROW_HEIGHT + 4

    @property
    def height(self) -> int:
        return self.axis_y + CHART_AXIS_HEIGHT


def render_text(report: dict[str, Any], show_all: bool = False) -> str:
    """The human summary a log shows; the caller prints where the report files are.

    What went wrong comes first, every failed node by name (past FULL_UP_TO, a line per
    container counting them by reason, unless `show_all`); then the run; then a line per
    container counting its nodes by status, and a line per node only on a small site.
    """
    _check_schema(report)
    lines = [_headline(report)]
    if report["simulated"]:
        lines.append(simulated_warning(report))
    if report["message"]:
        lines.append(report["message"])
    if report["failed"]:
        lines.append("failed:")
        lines += [f"  {line}" for line in _failure_lines(report, show_all)]
    not_run = [node for node in report["nodes"] if _unfinished(node, report)]
    if not_run:
        # Nodes a wave was given but Ansible never ran: not failures, but not done either.
        lines.append("not run:")
        lines += [f"  {node['name']}: {node['reason']}" for node in not_run[:FULL_UP_TO]]
        if len(not_run) > FULL_UP_TO:
            lines.append(f"  ... {len(not_run) - FULL_UP_TO:,} more (report.json lists every node)")
    lines += [
        f"started {report['started']}, finished {report['finished']}",
        f"standard: {report['standard']['name']} ({report['standard']['file']})",
        f"options: {describe_options(report['options'])}",
        f"nodes: {describe_totals(report['totals'])}",
        f"stack: {describe_stack(report['stack'])}",
    ]
    if report["containers"]:
        lines.append("power:")
        lines += [f"  {_container_line(container)}" for container in report["containers"]]
    if report["nodes"]:
        lines.append("nodes:")
        lines += [f"  {line}" for line in _node_lines(report["nodes"])]
    return "\n".join(lines) + "\n"


def render_html(report: dict[str, Any], made: Made | None = None) -> str:
    """The self-contained page: inline style, inline SVG charts, no scripts, no links out."""
    _check_schema(report)
    problems, rest = split_problems(report)
    return _environment().get_template(TEMPLATE_NAME).render(
        report=report,
        simulated_warning=simulated_warning(report) if report["simulated"] else None,
        options=describe_options(report["options"]),
        totals=describe_totals(report["totals"]),
        stack=describe_stack(report["stack"]),
        charts=[container_chart(container) for container in report["containers"]],
        problems=problems,
        folds=fold_by_container(rest),
        fingerprint_shown=FINGERPRINT_SHOWN,
        made=made or made_now(f"ecohash provision {report['site']}, run {report['run']}"),
    )


def write_report(report: dict[str, Any], directory: Path) -> ReportFiles:
    """Write report.json, report.html and report.txt into directory, each atomically.

    All three are rendered before any is written, so a template error cannot leave a new
    JSON beside the previous run's page.
    """
    contents = {
        "json": report_json(report),
        "html": render_html(report),
        "text": render_text(report),
    }
    files = ReportFiles(
        json=directory / "report.json", html=directory / "report.html", text=directory / "report.txt"
    )
    for kind, text in contents.items():
        # Readable by all: a report is for whoever looks at the run, not only the user who ran it.
        write_atomic(getattr(files, kind), text, mode=0o644)
    return files


def report_json(report: Mapping[str, Any]) -> str:
    """The report as JSON: indented, but each node on one line of its own.

    Indented to the leaves, a node's checks take ~60 lines and most of its bytes are
    spaces; on one line, `grep NODE report.json` gives its whole record.
    """
    if not report["nodes"]:
        return json.dumps(report, indent=2) + "\n"
    # Only a top-level key is indented by exactly two spaces, and JSON strings hold no
    # raw line breaks: this is the one place the node list goes.
    before, after = json.dumps({**report, "nodes": []}, indent=2).split(_EMPTY_NODES, 1)
    lines = ",\n".join(f"    {json.dumps(node)}" for node in report["nodes"])
    return f'{before}\n  "nodes": [\n{lines}\n  ]{after}\n'


def simulated_warning(report: Mapping[str, Any]) -> str:
    return (
        f"SIMULATED: the node standard {report['standard']['name']} is a simulated one, "
        "not real NVIDIA hardware; a pass here proves the rollout, not the GPUs"
    )


def describe_stack(stack: Mapping[str, Any]) -> str:
    """What happened to the site's Kubernetes stack, in one line."""
    action, reason, directory, objects = (
        stack["action"], stack["reason"], stack["directory"], stack["objects"]
    )
    if action == "applied":
        details = [f"{objects} objects" if objects is not None else None,
                   f"rendered to {directory}" if directory else None]
        shown = ", ".join(d for d in details if d)
        return f"applied ({shown})" if shown else "applied"
    if action == "rendered":
        where = f"rendered to {directory}" if directory else "rendered"
        return f"{where} (not applied: {reason})" if reason else f"{where} (not applied)"
    if action == "not-run":
        return f"not run ({reason})" if reason else "not run"
    return f"{action} ({reason})" if reason else str(action)


def describe_options(options: Mapping[str, Any]) -> str:
    """The options as the command-line flags that would repeat the run."""
    flags = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif value is not None and value is not False:
            flags.append(f"{flag} {value}")
    return " ".join(flags) or "defaults"


def describe_totals(totals: Mapping[str, int]) -> str:
    counted = ", ".join(
        f"{totals[key]:,} {key.replace('_', ' ')}" for key in totals if key != "nodes"
    )
    return f"{totals['nodes']:,} in all, {counted}" if counted else f"{totals['nodes']:,} in all"


def container_chart(container: Mapping[str, Any]) -> ContainerChart:
    """Place a container's three power figures on one scale: the largest fills the bar space."""
    figures = [
        ("budget", "budget", container["budget_kw"]),
        ("planned", "planned draw at caps", container["planned_draw_kw"]),
        ("measured", "measured, GPUs only", container["measured_gpu_draw_kw"]),
    ]
    scale = max((max(value, 0.0) for _, _, value in figures if value is not None), default=0.0)
    budget = container["budget_kw"]
    bars = tuple(
        Bar(
            kind=kind,
            label=label,
            kw=value,
            width=_bar_width(value, scale),
            y=row * CHART_ROW_HEIGHT,
            value_label=format_kw(value) if value is not None else "not measured",
            over_budget=kind != "budget" and _exceeds(value, budget),
        )
        for row, (kind, label, value) in enumerate(figures)
    )
    return ContainerChart(
        name=container["name"],
        gpus=container["gpus"],
        nodes=container["nodes"],
        scale_kw=scale,
        bars=bars,
        budget_x=None if budget is None else CHART_LABEL_WIDTH + _bar_width(budget, scale),
    )


@dataclass(frozen=True)
class Fold:
    """A container's nodes that need no attention, folded under one line that counts them."""

    container: str
    counts: str
    nodes: tuple[Mapping[str, Any], ...]


def split_problems(report: Mapping[str, Any]) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """The nodes to look at (failed, then interrupted, then unfinished), and the rest;
    each group in the run's order."""
    failed_names = {failure["name"] for failure in report["failed"]}

    def rank(node: Mapping[str, Any]) -> int:
        if node["name"] in failed_names or node["status"] not in KNOWN_STATUSES:
            return 0
        if node["status"] in PROBLEM_STATUSES:
            return 1
        return 2 if _unfinished(node, report) else 3

    ranked = sorted(report["nodes"], key=rank)
    problems = [node for node in ranked if rank(node) < 3]
    return problems, ranked[len(problems):]


def fold_by_container(nodes: Iterable[Mapping[str, Any]]) -> list[Fold]:
    """The nodes grouped by container, in the order containers first appear."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for node in nodes:
        groups.setdefault(node["container"], []).append(node)
    return [Fold(container, describe_statuses(members), tuple(members))
            for container, members in groups.items()]


def describe_statuses(nodes: Iterable[Mapping[str, Any]]) -> str:
    """'97 passed, 2 skipped': nodes counted by status, problems first, then by count."""
    counts = Counter(node["status"] for node in nodes)
    order = {status: index for index, status in enumerate(KNOWN_STATUSES)}
    ranked = sorted(counts.items(), key=lambda item: (order.get(item[0], -1), -item[1]))
    return ", ".join(f"{count:,} {status}" for status, count in ranked)


def checks_passed(checks: list[Mapping[str, Any]]) -> str:
    """A node's verification in a few words: every check's detail is in report.json."""
    if not checks:
        return "-"
    passed = sum(1 for check in checks if check["passed"])
    return f"all {passed} passed" if passed == len(checks) else f"{passed} of {len(checks)} passed"


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def format_kw(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f} kW"


def format_verdict(verdict: Mapping[str, Any] | None) -> str:
    """node_health's verdict is opaque here; only passed and failed_checks are shown."""
    if verdict is None:
        return "-"
    if verdict.get("passed"):
        return "passed"
    failed_checks = verdict.get("failed_checks") or []
    return "failed: " + ", ".join(str(check) for check in failed_checks) if failed_checks else "failed"


def status_class(status: str) -> str:
    """A CSS class per known status; an unknown one gets a neutral class rather than its own name."""
    return f"status-{status}" if status in KNOWN_STATUSES else "status-other"


def _check_schema(report: Mapping[str, Any]) -> None:
    if report.get("schema") != REPORT_SCHEMA:
        raise EcohashError(
            f"provision report schema {report.get('schema')!r} is not one this ecohash renders"
            f" (it renders schema {REPORT_SCHEMA})"
        )


def _headline(report: Mapping[str, Any]) -> str:
    return (
        f"provision {report['site']}, run {report['run']}: {report['outcome']}"
        f" in {format_duration(report['duration_s'])}"
    )


def _container_line(container: Mapping[str, Any]) -> str:
    measured = container["measured_gpu_draw_kw"]
    measured_text = "not measured" if measured is None else format_kw(measured)
    return (
        f"{container['name']}: budget {format_kw(container['budget_kw'])},"
        f" planned draw at caps {format_kw(container['planned_draw_kw'])},"
        f" measured GPU draw {measured_text};"
        f" {container['gpus']} GPUs on {container['nodes']} nodes"
    )


def _unfinished(node: Mapping[str, Any], report: Mapping[str, Any]) -> bool:
    """A node a wave was given but Ansible never ran (a dry run's only say where they would)."""
    return node["status"] == NOT_RUN and bool(node["reason"]) and not report["options"]["dry_run"]


def _failure_lines(report: Mapping[str, Any], show_all: bool) -> list[str]:
    """'name: reason' per failed node; past FULL_UP_TO, per container by reason with the first names."""
    container_of = _containers_of(report)
    return problem_lines([(failure["name"], container_of.get(failure["name"], "-"), failure["reason"])
                          for failure in report["failed"]], show_all)


def failed_names(report: Mapping[str, Any], show_all: bool = False) -> str:
    """The failed nodes' names in one line (an error message), past FULL_UP_TO per container."""
    container_of = _containers_of(report)
    failed = [(failure["name"], container_of.get(failure["name"], "-")) for failure in report["failed"]]
    return names_line(failed, show_all)


def _containers_of(report: Mapping[str, Any]) -> dict[str, str]:
    return {node["name"]: node["container"] for node in report["nodes"]}


def _node_lines(nodes: list[Mapping[str, Any]]) -> list[str]:
    """A line per node on small sites; on large ones a line per container counting its nodes
    by status (failures and unfinished nodes are named above)."""
    if summarised(len(nodes), show_all=False):
        return [f"{fold.container}: {fold.counts}" for fold in fold_by_container(nodes)]
    name_width = max(len(node["name"]) for node in nodes)
    status_width = max(len(node["status"]) for node in nodes)
    duration_width = max(len(format_duration(node["duration_s"])) for node in nodes)
    lines = []
    for node in nodes:
        wave = f"wave {node['wave']}" if node["wave"] is not None else "no wave"
        line = (
            f"{node['name']:<{name_width}}  {node['status']:<{status_width}}  {wave:<7}"
            f"  {format_duration(node['duration_s']):<{duration_width}}  {node['reason'] or ''}"
        )
        lines.append(line.rstrip())
    return lines


def _bar_width(value: float | None, scale: float) -> float:
    # A zero scale (no budget and nothing drawn) gives empty bars rather than a division error.
    if value is None or scale <= 0:
        return 0.0
    return round(max(value, 0.0) / scale * CHART_BAR_SPACE, 1)


def _exceeds(value: float | None, budget: float | None) -> bool:
    return value is not None and budget is not None and value > budget


@cache
def _environment() -> Environment:
    environment = page_environment()
    environment.filters.update(
        duration=format_duration, kw=format_kw, verdict=format_verdict, status_class=status_class,
        checks_passed=checks_passed,
    )
    return environment
