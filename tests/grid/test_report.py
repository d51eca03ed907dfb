"""The event report: figures in report.json, and a page that stands alone."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest

from ecohash.grid.actuate import CurtailRequest, start_event
from ecohash.grid.events import event_dir
from ecohash.grid.rule import target_for
from tests.grid.simnodes import SimulatedNodes
from tests.grid.sites import grid_plan


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ECOHASH_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def curtailed(dead: str | None = None):
    plan = grid_plan()
    nodes = SimulatedNodes.of(plan)
    if dead:
        nodes.unreachable.add(dead)
    outcome = start_event(CurtailRequest(plan.site, plan, target_for(plan, by_pct=Decimal(20)), settle_s=3,
                                         interval_s=0.05), link=nodes)
    return outcome, event_dir("grid-test", outcome.event.id)


def test_report_json_states_the_target_the_timings_and_every_container() -> None:
    outcome, directory = curtailed()
    report = json.loads((directory / "report.json").read_text())
    assert report["event"] == outcome.event.id and report["state"] == "active"
    assert report["target"] == {"label": "by 20%", "facility_mw": 0.0912, "it_w": 72960.0, "pue": 1.25}
    assert report["timings"]["verified_s"] == outcome.event.verified_s
    assert report["timings"]["below_target_s"] == outcome.event.below_target_s
    assert [c["name"] for c in report["containers"]] == ["c01", "c02", "c03"]
    c02 = report["containers"][1]
    assert (c02["flex"], c02["gpus"], c02["gpu_caps_w"], c02["planned_gpu_caps_w"]) == (3, 32, [200], [700])
    assert (c02["planned_draw_w"], c02["event_draw_w"]) == (4 * 7600, 4 * (2000 + 8 * 200))
    assert c02["measured"][-1]["draw_w"] <= c02["event_draw_w"]
    assert [m["t"] for m in c02["measured"]] == sorted(m["t"] for m in c02["measured"])
    assert report["event_it_draw_w"] <= 72960 < report["planned_it_draw_w"]
    assert report["site_measured"][-1]["it_draw_w"] <= 72960
    assert report["held"] == [] and report["failed"] == [] and report["simulated"] is False
    assert report["throughput"] is not None and 0 < report["throughput"]["share"] < 1


def test_held_nodes_come_first_and_are_named() -> None:
    _, directory = curtailed(dead="c02-r01-n03")
    report = json.loads((directory / "report.json").read_text())
    assert report["held"] == [{"name": "c02-r01-n03", "reason": "unreachable: connection timed out after 10 s; "
                                                               "held at 700 W per GPU"}]
    assert report["nodes"][0]["name"] == "c02-r01-n03" and report["nodes"][0]["status"] == "held"
    assert "c02-r01-n03" in (directory / "report.html").read_text()


def test_the_page_is_self_contained_with_a_timeline_per_container_and_the_site() -> None:
    _, directory = curtailed()
    page = (directory / "report.html").read_text()
    assert "<script" not in page and "<link" not in page and "@import" not in page
    assert re.findall(r"(?:src|href)=", page) == []
    # Only the SVG namespace names a URL.
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) == {"http://www.w3.org/2000/svg"}
    assert page.count("<svg") == 4  # the site, then c01, c02, c03
    assert page.count('class="line measured"') == 4
    assert 'class="line target"' in page
    assert "Command to all caps verified" in page and "Curtailment of grid-test: by 20%" in page


def test_past_50_nodes_the_page_folds_enforcing_nodes_per_container_and_lists_the_rest_first() -> None:
    from ecohash.grid.report import render_html

    _, directory = curtailed()
    report = json.loads((directory / "report.json").read_text())
    template = report["nodes"][0]
    report["nodes"] = [dict(template, name=f"c0{c}-n{i:03d}", container=f"c0{c}", status="enforced")
                       for c in (1, 2) for i in range(40)]
    report["nodes"][5].update(status="held", reason="no answer")
    page = render_html(report)
    assert page.count('<details class="fold">') == 2
    assert "<summary>c01: 39 enforced: c01-n000, c01-n001, c01-n002, … 36 more</summary>" in page
    assert page.index("c01-n005") < page.index('<details class="fold">')  # the held node first, unfolded
    assert len(re.findall(r"<tr><td>c0\d-n\d+</td>", page)) == 80  # every node is still on the page
