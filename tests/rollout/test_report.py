"""The provision report's three forms: JSON that round-trips, text for logs, a self-contained page."""

from __future__ import annotations

import copy
import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from ecohash.errors import EcohashError
from ecohash.rollout.report import (
    CHART_BAR_SPACE,
    REPORT_SCHEMA,
    ReportFiles,
    failed_names,
    render_html,
    render_text,
    write_report,
)
from ecohash.summarise import FULL_UP_TO

FINGERPRINT = "ab12cd34ef56" + "0" * 52
HOSTILE = '<script>alert("x")</script>&"\''


def make_node(name: str, status: str = "passed", **overrides: Any) -> dict[str, Any]:
    container, rack, _ = name.split("-", 2)
    node = {
        "name": name,
        "container": container,
        "rack": rack,
        "gpu_model": "h100-sxm",
        "gpus": 2,
        "gpu_cap_w": 350,
        "status": status,
        "reason": None,
        "fingerprint": FINGERPRINT,
        "wave": 1,
        "duration_s": 61.0,
        "verdict": {"passed": True, "simulated": True, "failed_checks": []},
        "checks": [{"name": "power limit 350 W on every GPU", "passed": True, "detail": "350.00, 350.00"}],
        "gpu_draw_w": 123.0,
    }
    node.update(overrides)
    return node


def sample_report(**overrides: Any) -> dict[str, Any]:
    """The lab's four nodes, one of them unreachable; overrides replace top-level keys."""
    unreachable = "unreachable: connection timed out after 10 s"
    report = {
        "schema": REPORT_SCHEMA,
        "site": "lab",
        "run": "20261121T101500Z-provision",
        "directory": "/var/lib/ecohash/runs/lab/20261121T101500Z-provision",
        "started": "2026-11-21T10:15:00Z",
        "finished": "2026-11-21T10:17:03Z",
        "duration_s": 123.4,
        "outcome": "completed",
        "message": "3 of 4 nodes passed",
        "simulated": True,
        "standard": {"name": "ecohash-lab-simulated", "file": "/repo/node-standard.lock.yml"},
        "options": {"limit": None, "wave_size": "2", "max_fail_pct": 25, "force": False, "dry_run": False},
        "stack": {"action": "applied", "reason": None, "directory": "/runs/lab/stack", "objects": 22},
        "totals": {"nodes": 4, "passed": 3, "failed": 1, "skipped": 0, "not_run": 0},
        "containers": [
            {"name": "c01", "budget_kw": 2.3, "planned_draw_kw": 2.1, "measured_gpu_draw_kw": 0.45,
             "gpus": 4, "nodes": 2},
            {"name": "c02", "budget_kw": 2.3, "planned_draw_kw": 1.4, "measured_gpu_draw_kw": 0.2,
             "gpus": 2, "nodes": 2},
        ],
        "waves": [
            {"index": 1, "name": "canary", "nodes": ["c01-r01-n01", "c02-r01-n01"], "duration_s": 80.2,
             "failed": [], "directory": "/runs/lab/wave-01"},
            {"index": 2, "name": "wave 2", "nodes": ["c01-r01-n02", "c02-r01-n02"], "duration_s": 42.0,
             "failed": ["c02-r01-n02"], "directory": "/runs/lab/wave-02"},
        ],
        "nodes": [
            make_node("c01-r01-n01"),
            make_node("c01-r01-n02", wave=2),
            make_node("c02-r01-n01", gpu_model=None, gpus=0, gpu_cap_w=None, gpu_draw_w=None, checks=[]),
            make_node("c02-r01-n02", "unreachable", reason=unreachable, wave=2, duration_s=None,
                      verdict=None, checks=[], gpu_draw_w=None),
        ],
        "failed": [{"name": "c02-r01-n02", "reason": unreachable}],
    }
    report.update(copy.deepcopy(overrides))
    return report


class Page(HTMLParser):
    """What the tests look at in a page: tags, text, node table order and chart bar widths."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.style = ""
        self.node_rows: list[str] = []
        self.folded_rows: list[str] = []  # node rows inside a <details>, which a page shows closed
        self.summaries: list[str] = []  # the <summary> line of each <details>
        self.bars: list[dict[str, float]] = []
        self._open: list[str] = []
        self._details = 0
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        self.tags.append((tag, attributes))
        if tag == "svg":
            self.bars.append({})
        if tag == "rect" and "bar" in classes:
            kind = next(c for c in classes if c in ("budget", "planned", "measured"))
            self.bars[-1][kind] = float(attributes["width"] or "nan")
        if tag == "td" and "node-name" in classes:
            self.node_rows.append("")
        if tag == "details":
            assert "open" not in attributes, "folded sections start closed"
            self._details += 1
        if tag == "summary":
            self.summaries.append("")
        self._open.append(" ".join([tag, *classes]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._open and self._open[-1] == "td node-name" and self._details:
            self.folded_rows.append(self.node_rows[-1])
        if tag == "details":
            self._details -= 1
        if self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        current = self._open[-1] if self._open else ""
        if current == "style":
            self.style += data
        if current == "td node-name":
            self.node_rows[-1] += data
        if "summary" in self._open[-2:] and self.summaries:
            self.summaries[-1] += data

    def has_class(self, name: str) -> bool:
        return any(name in (attributes.get("class") or "").split() for _, attributes in self.tags)

    def all_text(self) -> str:
        return "".join(self.text)


def test_write_report_writes_three_files_and_the_json_round_trips(tmp_path: Path):
    report = sample_report()

    files = write_report(report, tmp_path / "run")

    assert files == ReportFiles(
        json=tmp_path / "run" / "report.json",
        html=tmp_path / "run" / "report.html",
        text=tmp_path / "run" / "report.txt",
    )
    assert json.loads(files.json.read_text()) == report
    assert files.json.read_text().endswith("}\n")
    # The same page, but for the second it was made at, which its footer states.
    made = re.compile(r'<p class="made">[^<]*</p>')
    assert made.sub("", files.html.read_text()) == made.sub("", render_html(report))
    assert files.text.read_text() == render_text(report)


def test_the_page_loads_nothing_from_the_network_and_runs_no_script():
    page_html = render_html(sample_report(message="see https://example.com/why"))
    page = Page(page_html)

    tags = {tag for tag, _ in page.tags}
    assert "script" not in tags and "link" not in tags and "iframe" not in tags and "img" not in tags
    for tag, attributes in page.tags:
        for name in ("src", "href", "xlink:href", "action"):
            value = attributes.get(name) or ""
            assert not re.match(r"\s*(https?:)?//", value), f"<{tag} {name}={value!r}>"
        assert not any(name.startswith("on") for name in attributes), f"<{tag}> has an event handler"
    assert page.style, "the style is inline"
    assert "url(" not in page.style and "@import" not in page.style


@pytest.mark.parametrize("simulated", [True, False])
def test_the_simulated_warning_appears_exactly_when_the_standard_is_simulated(simulated: bool):
    report = sample_report(simulated=simulated)

    text = render_text(report)
    page = Page(render_html(report))

    assert ("SIMULATED" in text) is simulated
    assert ("not real NVIDIA hardware" in text) is simulated
    assert page.has_class("simulated-banner") is simulated
    assert ("SIMULATED" in page.all_text()) is simulated


def test_hostile_names_and_reasons_are_escaped_in_the_page():
    name = f"c02-r01-{HOSTILE}"
    report = sample_report(
        site=f"lab{HOSTILE}",
        nodes=[make_node(name, "failed", reason=HOSTILE, fingerprint=HOSTILE,
                         checks=[{"name": HOSTILE, "passed": False, "detail": HOSTILE}])],
        failed=[{"name": name, "reason": HOSTILE}],
        containers=[{"name": HOSTILE, "budget_kw": 1.0, "planned_draw_kw": 0.5,
                     "measured_gpu_draw_kw": None, "gpus": 2, "nodes": 1}],
    )

    page_html = render_html(report)
    page = Page(page_html)

    assert "<script>" not in page_html
    assert "script" not in {tag for tag, _ in page.tags}
    assert page.node_rows == [name], "the name survives escaping and reads back whole"
    assert HOSTILE in page.all_text()
    assert any(attributes.get("title") == HOSTILE for _, attributes in page.tags), "attributes escape quotes"


def test_failed_nodes_are_listed_with_reasons_in_the_text_and_first_in_the_node_table():
    report = sample_report()

    text = render_text(report)
    page = Page(render_html(report))

    assert "failed:\n  c02-r01-n02: unreachable: connection timed out after 10 s\n" in text
    assert page.node_rows == ["c02-r01-n02", "c01-r01-n01", "c01-r01-n02", "c02-r01-n01"]


def test_interrupted_nodes_come_after_failed_ones_and_before_the_rest():
    report = sample_report()
    report["nodes"][0]["status"] = "interrupted"

    assert Page(render_html(report)).node_rows == ["c02-r01-n02", "c01-r01-n01", "c01-r01-n02", "c02-r01-n01"]
    report["nodes"][1]["status"] = "interrupted"
    assert Page(render_html(report)).node_rows == ["c02-r01-n02", "c01-r01-n01", "c01-r01-n02", "c02-r01-n01"]
    report["nodes"][0]["status"] = "passed"
    assert Page(render_html(report)).node_rows == ["c02-r01-n02", "c01-r01-n02", "c01-r01-n01", "c02-r01-n01"]


def test_chart_bars_are_proportional_on_one_scale_per_container():
    page = Page(render_html(sample_report()))

    c01, c02 = page.bars
    assert c01["budget"] == CHART_BAR_SPACE, "the largest figure fills the bar space"
    assert c01["planned"] / c01["budget"] == pytest.approx(2.1 / 2.3, abs=0.001)
    assert c01["measured"] / c01["budget"] == pytest.approx(0.45 / 2.3, abs=0.001)
    assert c02["planned"] / c02["budget"] == pytest.approx(1.4 / 2.3, abs=0.001)


def test_a_planned_draw_over_budget_sets_the_scale_and_is_marked():
    containers = [{"name": "c01", "budget_kw": 2.0, "planned_draw_kw": 2.5, "measured_gpu_draw_kw": 1.0,
                   "gpus": 4, "nodes": 2}]
    page_html = render_html(sample_report(containers=containers))
    (bars,) = Page(page_html).bars

    assert bars["planned"] == CHART_BAR_SPACE
    assert bars["budget"] / bars["planned"] == pytest.approx(2.0 / 2.5, abs=0.001)
    assert re.search(r'class="bar planned over"', page_html)
    assert not re.search(r'class="bar measured over"', page_html)


def test_an_unmeasured_container_says_not_measured_and_draws_no_measured_bar():
    containers = [{"name": "c01", "budget_kw": 2.3, "planned_draw_kw": 2.1, "measured_gpu_draw_kw": None,
                   "gpus": 4, "nodes": 2}]
    report = sample_report(containers=containers)

    page = Page(render_html(report))
    text = render_text(report)

    (bars,) = page.bars
    assert set(bars) == {"budget", "planned"}
    assert "not measured" in page.all_text()
    assert "c01: budget 2.30 kW, planned draw at caps 2.10 kW, measured GPU draw not measured;" in text


def test_a_container_with_no_budget_and_no_figures_renders_empty_bars():
    containers = [
        {"name": "c01", "budget_kw": 0, "planned_draw_kw": 0, "measured_gpu_draw_kw": None, "gpus": 0, "nodes": 0},
        {"name": "c02", "budget_kw": 0, "planned_draw_kw": None, "measured_gpu_draw_kw": None,
         "gpus": 0, "nodes": 0},
    ]
    report = sample_report(containers=containers)

    page_html = render_html(report)
    render_text(report)

    assert Page(page_html).bars == [{"budget": 0.0, "planned": 0.0}, {"budget": 0.0}]
    assert "nan" not in page_html.lower() and "inf" not in re.sub(r"inference", "", page_html.lower())


def test_a_large_site_counts_nodes_per_container_instead_of_listing_them_but_lists_every_failure():
    nodes = [make_node(f"c{i // 100:03d}-r01-n{i % 100:03d}") for i in range(5000)]
    nodes[17] = make_node(nodes[17]["name"], "failed", reason="gpu 3 power limit 700 W, wanted 350 W")
    nodes[4321] = make_node(nodes[4321]["name"], "unreachable", reason="unreachable: no route to host")
    failed = [{"name": n["name"], "reason": n["reason"]} for n in nodes if n["status"] != "passed"]
    report = sample_report(nodes=nodes, failed=failed,
                           totals={"nodes": 5000, "passed": 4998, "failed": 2, "skipped": 0, "not_run": 0})

    text = render_text(report)

    assert len(text.splitlines()) < 30 + 50  # a line per container, none per node
    assert "\n  c000: 1 failed, 99 passed\n" in text and "\n  c043: 1 unreachable, 99 passed\n" in text
    assert "\n  c001: 100 passed\n" in text
    assert f"  {nodes[17]['name']}: gpu 3 power limit 700 W, wanted 350 W\n" in text
    assert f"  {nodes[4321]['name']}: unreachable: no route to host\n" in text
    assert nodes[0]["name"] not in text


@pytest.mark.slow
def test_nodes_a_wave_never_ran_are_named_with_the_reason_on_a_site_of_any_size():
    reason = "the playbook ended before this node ran: c000-r01-n000 failed: Install k3s: checksum mismatch"
    nodes = [make_node(f"c{i // 100:03d}-r01-n{i % 100:03d}", "not-run", wave=None, reason=None)
             for i in range(5000)]
    nodes[0] = make_node(nodes[0]["name"], "failed", reason="Install k3s: checksum mismatch")
    nodes[1] = make_node(nodes[1]["name"], "not-run", reason=reason, verdict=None, checks=[])
    report = sample_report(nodes=nodes, failed=[{"name": nodes[0]["name"], "reason": nodes[0]["reason"]}],
                           totals={"nodes": 5000, "passed": 0, "failed": 1, "skipped": 0, "not_run": 4999})

    text = render_text(report)
    page = Page(render_html(report))

    # Only the node its wave was given has a reason; those no wave reached are counted.
    assert f"not run:\n  {nodes[1]['name']}: {reason}\n" in text
    assert "\n  c000: 1 failed, 99 not-run\n  c001: 100 not-run\n" in text and nodes[2]["name"] not in text
    assert page.has_class("status-not-run") and reason in page.all_text()


def test_a_dry_run_says_where_nodes_would_run_only_in_the_node_lines():
    nodes = [make_node("c01-r01-n01", "not-run", reason="would run in canary")]
    text = render_text(sample_report(nodes=nodes, failed=[], outcome="dry-run",
                                     options={"limit": None, "wave_size": "2", "max_fail_pct": 25,
                                              "force": False, "dry_run": True}))

    assert "not run:" not in text and "would run in canary" in text


def test_a_run_that_failed_says_so_with_the_error():
    error = "failed: pulumi up failed: the API server refused the connection; finished waves are recorded"
    report = sample_report(outcome="failed", message=error)

    text = render_text(report)
    page = Page(render_html(report))

    assert text.startswith("provision lab, run 20261121T101500Z-provision: failed in ")
    assert f"\n{error}\n" in text
    assert page.has_class("outcome-failed") and error in page.all_text()
    assert ".outcome-failed" in page.style  # shown like a stopped run, not as a neutral word


def test_a_small_site_lists_every_node():
    report = sample_report()

    text = render_text(report)

    assert len(report["nodes"]) <= FULL_UP_TO
    for node in report["nodes"]:
        assert re.search(rf"^  {node['name']}\s+{node['status']}", text, re.MULTILINE)


def test_the_text_says_what_happened_in_lines_a_log_can_show():
    text = render_text(sample_report())

    assert text.startswith("provision lab, run 20261121T101500Z-provision: completed in 2 min 03 s\n")
    assert text.endswith("\n") and not text.endswith("\n\n")
    assert "nodes: 4 in all, 3 passed, 1 failed, 0 skipped, 0 not run\n" in text
    assert "options: --wave-size 2 --max-fail-pct 25\n" in text
    assert "c01: budget 2.30 kW, planned draw at caps 2.10 kW, measured GPU draw 0.45 kW; 4 GPUs on 2 nodes\n" in text
    assert "report.json" not in text and "report.html" not in text


@pytest.mark.parametrize(
    ("stack", "line"),
    [
        ({"action": "applied", "reason": None, "directory": "/runs/stack", "objects": 22},
         "stack: applied (22 objects, rendered to /runs/stack)"),
        ({"action": "rendered", "reason": "no pulumi CLI on PATH", "directory": "/runs/stack", "objects": 22},
         "stack: rendered to /runs/stack (not applied: no pulumi CLI on PATH)"),
        ({"action": "not-run", "reason": "the site has no cluster", "directory": None, "objects": None},
         "stack: not run (the site has no cluster)"),
    ],
)
def test_the_stack_line_says_whether_it_was_applied_and_why_not(stack: dict[str, Any], line: str):
    report = sample_report(stack=stack)

    assert f"\n{line}\n" in render_text(report)
    assert line.removeprefix("stack: ") in Page(render_html(report)).all_text()


def test_a_report_of_another_schema_is_refused():
    with pytest.raises(EcohashError, match="provision report schema 1 is not one this ecohash renders"):
        render_text(sample_report(schema=1))


def test_writing_over_a_report_replaces_it_and_leaves_no_temporary_files(tmp_path: Path):
    write_report(sample_report(outcome="stopped"), tmp_path)

    files = write_report(sample_report(outcome="completed"), tmp_path)

    assert json.loads(files.json.read_text())["outcome"] == "completed"
    assert "completed" in files.text.read_text().splitlines()[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "report.json", "report.txt"]
    assert all(os.stat(p).st_mode & 0o777 == 0o644 for p in tmp_path.iterdir())


def test_an_interrupted_write_keeps_the_previous_file_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    write_report(sample_report(outcome="stopped"), tmp_path)
    before = {p.name: p.read_text() for p in tmp_path.iterdir()}

    def interrupted(descriptor: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_report(sample_report(outcome="completed"), tmp_path)

    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == before


# --- a 1,000-node report: failures first, the rest folded per container, sizes bounded ---------

CHECKS_PER_NODE = 16  # as verification gives them on the lab


def thousand_node_report() -> dict[str, Any]:
    """Ten containers of 100 nodes: 1% failed, a few unreachable or never run, 10% skipped."""
    checks = [{"name": f"check {k} of the standard", "passed": True, "detail": "as the standard"}
              for k in range(CHECKS_PER_NODE)]
    nodes = []
    for i in range(1000):
        name = f"c{i // 100 + 1:02d}-r{i % 100 // 25 + 1:02d}-n{i % 25 + 1:02d}"
        node = make_node(name, checks=copy.deepcopy(checks), wave=2 + i // 200)
        if i % 100 == 41:
            node.update(status="failed", reason=f"failed acceptance: power_limit_w on {name}")
            node["checks"][8] = {"name": "power limit 350 W on every GPU", "passed": False, "detail": "700.00"}
        elif i % 333 == 77:
            node.update(status="unreachable", reason="preflight: no route to host", checks=[], verdict=None)
        elif i == 998:
            node.update(status="not-run", reason="the playbook ended before this node ran (canceled)")
        elif i % 10 == 3:
            node.update(status="skipped", reason="already standard at this fingerprint", checks=[], verdict=None)
        nodes.append(node)
    failed = [{"name": n["name"], "reason": n["reason"]} for n in nodes if n["status"] in ("failed", "unreachable")]
    containers = [{"name": f"c{c:02d}", "budget_kw": 500.0, "planned_draw_kw": 400.0, "measured_gpu_draw_kw": 80.0,
                   "gpus": 200, "nodes": 100} for c in range(1, 11)]
    totals = {"nodes": 1000, "passed": sum(n["status"] == "passed" for n in nodes), "failed": len(failed),
              "skipped": sum(n["status"] == "skipped" for n in nodes), "not_run": 1}
    return sample_report(nodes=nodes, failed=failed, containers=containers, totals=totals, outcome="stopped")


def test_a_1000_node_page_shows_every_failure_first_and_folds_the_rest_per_container():
    report = thousand_node_report()
    problems = [f["name"] for f in report["failed"]] + ["c10-r04-n24"]  # then the one never run

    page_html = render_html(report)
    page = Page(page_html)

    assert len(problems) == 14
    assert page.node_rows[:len(problems)] == problems  # first, and outside any fold
    assert not set(problems) & set(page.folded_rows)
    assert sorted(page.folded_rows) == sorted(n["name"] for n in report["nodes"] if n["name"] not in problems)
    assert page.folded_rows == page.node_rows[len(problems):]  # container by container, in the run's order
    assert page.summaries[0] == "c01: 88 passed, 10 skipped"
    assert len(page.summaries) == 10 and all(s.startswith(f"c{c:02d}: ") for c, s in enumerate(page.summaries, 1))
    # A problem's row lists its checks; a folded one counts them in a few words.
    assert page_html.count('class="check-failed"') == 10
    assert page_html.count('class="check-passed"') == 10 * (CHECKS_PER_NODE - 1) + CHECKS_PER_NODE  # + not-run
    assert page_html.count(f"<td>all {CHECKS_PER_NODE} passed</td>") == report["totals"]["passed"]
    # Bounded: a folded node is one line of markup, a few hundred bytes.
    folded = [line for line in page_html.splitlines() if line.startswith('<tr><td class="node-name">')]
    assert len(folded) == 1000 and max(map(len, folded[len(problems):])) < 450
    assert len(page_html) < 500 * 1000


def test_a_1000_node_text_names_every_failure_first_and_counts_the_rest_per_container():
    report = thousand_node_report()

    lines = render_text(report).splitlines()

    failures = lines.index("failed:")
    assert failures <= 3  # after the headline, the simulated warning and the message
    named = lines[failures + 1:failures + 1 + len(report["failed"])]
    assert named == [f"  {f['name']}: {f['reason']}" for f in report["failed"]]
    assert lines[failures + 1 + len(report["failed"])] == "not run:"
    assert lines.index("nodes:") > lines.index("power:") > failures
    per_container = lines[lines.index("nodes:") + 1:]
    assert per_container[0] == "  c01: 1 failed, 1 unreachable, 88 passed, 10 skipped"
    assert per_container[-1] == "  c10: 1 failed, 88 passed, 10 skipped, 1 not-run"
    assert len(per_container) == 10 and len(lines) < 50


def test_a_1000_node_json_has_every_node_whole_on_a_line_of_its_own(tmp_path: Path):
    report = thousand_node_report()

    files = write_report(report, tmp_path)

    text = files.json.read_text()
    assert json.loads(text) == report
    node_lines = [line for line in text.splitlines() if line.startswith('    {"name": ')]
    assert [json.loads(line.rstrip(",")) for line in node_lines] == report["nodes"]
    # A line per node; the rest indented as before (the node list's brackets on two lines).
    assert len(text.splitlines()) == 1000 + len(json.dumps({**report, "nodes": []}, indent=2).splitlines()) + 1
    assert len(text) < 0.75 * len(json.dumps(report, indent=2))


def test_a_report_with_no_nodes_is_plain_indented_json(tmp_path: Path):
    report = sample_report(nodes=[], failed=[])

    text = write_report(report, tmp_path).json.read_text()

    assert text == json.dumps(report, indent=2) + "\n"


def unreachable_report(count: int) -> dict[str, Any]:
    """`count` nodes in two containers, every one unreachable, as a dry run's preflight finds them."""
    nodes = [make_node(f"c{i % 2 + 1:02d}-r01-n{i:03d}", status="unreachable", reason="preflight: no route to host")
             for i in range(count)]
    failed = [{"name": n["name"], "reason": n["reason"]} for n in nodes]
    return sample_report(nodes=nodes, failed=failed, outcome="stopped")


def test_past_the_limit_failures_are_a_line_per_container_with_counts_and_first_names():
    lines = render_text(unreachable_report(408)).splitlines()
    failures = lines.index("failed:")
    assert lines[failures + 1:failures + 4] == [
        "  c01: 204 preflight: no route to host: c01-r01-n000, c01-r01-n002, c01-r01-n004, … 201 more",
        "  c02: 204 preflight: no route to host: c02-r01-n001, c02-r01-n003, c02-r01-n005, … 201 more",
        "  (408 nodes; --all or --json lists every one)",
    ]


def test_with_show_all_every_failure_is_named():
    report = unreachable_report(408)
    lines = render_text(report, show_all=True).splitlines()
    failures = lines.index("failed:")
    assert lines[failures + 1:failures + 409] == [f"  {f['name']}: {f['reason']}" for f in report["failed"]]


def test_up_to_the_limit_every_failure_is_named():
    report = unreachable_report(FULL_UP_TO)
    text = render_text(report)
    assert all(f"  {f['name']}: {f['reason']}" in text for f in report["failed"])


def test_an_error_line_names_few_failures_and_summarises_many():
    assert failed_names(unreachable_report(3)) == "c01-r01-n000, c02-r01-n001, c01-r01-n002"
    line = failed_names(unreachable_report(408))
    assert line.startswith("408 nodes; c01: 204: c01-r01-n000, c01-r01-n002, c01-r01-n004, … 201 more; c02: 204: ")
    assert line.count("c0") < 20
    assert failed_names(unreachable_report(408), show_all=True).count(", ") == 407
