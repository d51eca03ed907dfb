"""The watcher's decisions under a fake clock: starts, changes, renews, releases, refuses, resumes.

Signals come from a scripted source; caps go through the real curtail machinery
(grid/actuate.py) to in-process simulated nodes (tests/grid/simnodes.py).
"""

from __future__ import annotations

import json
import stat
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pytest

from ecohash.grid.events import load_event
from ecohash.grid.signals import LEASE_S, Ask, Refusal, Request
from ecohash.grid.watch import DecisionLog, SiteActuator, Watcher, load_following, watcher_lock
from ecohash.locks import SiteLockedError
from tests.grid.simnodes import SimulatedNodes
from tests.grid.sites import grid_plan


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ECOHASH_STATE_DIR", str(tmp_path))
    return tmp_path


@dataclass
class Clock:
    now: float = field(default_factory=time.time)

    def __call__(self) -> float:
        return self.now


@dataclass
class Scripted:
    """A source that asks for whatever the test put in `requests` and refuses `refusals` once."""

    name: str = "scripted"
    requests: list[Request] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    polls: int = 0

    def poll(self, now: float) -> tuple[list[Request], list[Refusal]]:
        self.polls += 1
        refusals, self.refusals = self.refusals, []
        return list(self.requests), refusals


def ask(pct: int) -> Ask:
    return Ask(by_pct=Decimal(pct))


def request(key: str, pct: int, start: float, end: float | None, **options) -> Request:
    return Request(source="scripted", key=key, correlation_id=f"corr-{key}", ask=ask(pct), start=start,
                   end=end, reason=f"test signal {key}", **options)


def make(clock: Clock, *sources: Scripted, nodes: SimulatedNodes | None = None):
    plan = grid_plan()
    nodes = nodes or SimulatedNodes.of(plan, demand_w=700)
    log = DecisionLog(plan.site.name, None, clock)
    watcher = Watcher(plan.site, plan, sources, SiteActuator(plan.site, plan, settle_s=0, link=nodes),
                      log, clock)
    return watcher, nodes, log


def caps(nodes: SimulatedNodes) -> dict[str, float]:
    return {name: node.limit_w for name, node in nodes.nodes.items()}


def texts(log: DecisionLog) -> list[str]:
    return [f"{line['level']} {line['text']}" for line in log.lines]


def test_a_request_in_force_curtails_and_its_end_releases() -> None:
    clock = Clock()
    source = Scripted(requests=[request("a", 20, clock.now + 60, clock.now + 600)])
    watcher, nodes, log = make(clock, source)
    planned = caps(nodes)
    watcher.step()  # not yet in force
    assert caps(nodes) == planned and load_event("grid-test") is None
    clock.now += 60
    watcher.step()
    event = load_event("grid-test")
    assert event is not None and event.status == "active"
    assert (event.source, event.correlation_id, event.reason) == ("scripted", "corr-a", "test signal a")
    assert event.end is not None and abs((event.end - time.time()) - 540) < 5
    assert caps(nodes) != planned and all(caps(nodes)[n] <= planned[n] for n in planned)
    calls = len(nodes.calls)
    watcher.step()  # the same request again: nothing sent to any node
    assert len(nodes.calls) == calls
    clock.now += 540
    watcher.step()
    assert load_event("grid-test").status == "released"
    assert caps(nodes) == planned
    assert load_following("grid-test") is None
    lines = texts(log)
    assert any(line.startswith("INFO starts curtailment: by 20% ") and line.endswith("test signal a")
               for line in lines), lines
    assert any(line.startswith("INFO releases event ") for line in lines), lines


def test_the_deepest_request_wins_and_a_change_replaces_the_event() -> None:
    clock = Clock()
    shallow = request("shallow", 10, clock.now, clock.now + 600)
    source = Scripted(requests=[shallow])
    watcher, nodes, log = make(clock, source)
    watcher.step()
    first = load_event("grid-test")
    source.requests = [shallow, request("deep", 30, clock.now, clock.now + 300)]
    watcher.step()
    second = load_event("grid-test")
    assert second.id != first.id and second.replaced == first.id and second.correlation_id == "corr-deep"
    assert second.it_draw_w < first.it_draw_w
    source.requests = [shallow]  # the deep one withdrawn: back to the shallow one
    watcher.step()
    assert load_event("grid-test").correlation_id == "corr-shallow"
    assert any(line.startswith("INFO changes to curtailment: by 30%") for line in texts(log))


def test_a_request_without_an_end_is_leased_and_renewed_before_the_lease_runs_out() -> None:
    clock = Clock()
    source = Scripted(requests=[request("spike", 20, clock.now, None)])
    watcher, nodes, log = make(clock, source)
    watcher.step()
    first = load_event("grid-test")
    assert first.end is not None and abs(first.end - time.time() - LEASE_S) < 5
    clock.now += LEASE_S / 2
    watcher.step()
    assert load_event("grid-test").id == first.id  # more than a third of the lease left
    clock.now += LEASE_S / 4
    watcher.step()
    renewed = load_event("grid-test")
    assert renewed.id != first.id and renewed.correlation_id == "corr-spike"
    assert any(line.startswith("INFO renews curtailment") for line in texts(log))


def test_restore_minutes_from_the_request_ramp_the_release() -> None:
    clock = Clock()
    source = Scripted(requests=[request("a", 20, clock.now, clock.now + 60, restore_minutes=0.05)])
    watcher, nodes, log = make(clock, source)
    watcher.step()
    source.requests = []
    started = time.monotonic()
    watcher.step()
    assert time.monotonic() - started >= 2.5  # a 3 s ramp in steps
    assert load_event("grid-test").status == "released"
    assert any("over a 0.05 min ramp" in line for line in texts(log))


def test_refusals_are_logged_once_and_nothing_is_applied() -> None:
    clock = Clock()
    impossible = request("too-deep", 99, clock.now, clock.now + 60)
    source = Scripted(requests=[impossible],
                      refusals=[Refusal("scripted", "corr-x", "unknown signal name 'BOGUS'")])
    watcher, nodes, log = make(clock, source)
    planned = caps(nodes)
    watcher.step()
    watcher.step()
    assert caps(nodes) == planned and load_event("grid-test") is None
    refused = [line for line in log.lines if line["level"] == "REFUSED"]
    assert [line["correlation_id"] for line in refused] == ["corr-x", "corr-too-deep"]
    assert "cannot reach" in refused[1]["text"]


def test_a_restarted_watcher_resumes_its_event_without_applying_it_again() -> None:
    clock = Clock()
    source = Scripted(requests=[request("a", 20, clock.now, clock.now + 600)])
    watcher, nodes, _ = make(clock, source)
    watcher.step()
    event = load_event("grid-test")
    calls = len(nodes.calls)
    again, _, log = make(clock, source, nodes=nodes)
    again.step()
    assert len(nodes.calls) == calls and load_event("grid-test").id == event.id
    assert texts(log)[0].startswith(f"INFO resuming event {event.id}")


def test_an_event_a_person_started_is_left_alone() -> None:
    from ecohash.grid.actuate import CurtailRequest, start_event
    from ecohash.grid.rule import target_for

    clock = Clock()
    source = Scripted(requests=[request("a", 20, clock.now, clock.now + 600)])
    watcher, nodes, log = make(clock, source)
    plan = watcher.plan
    manual = start_event(CurtailRequest(plan.site, plan, target_for(plan, by_pct=Decimal(5)), settle_s=0),
                         link=nodes).event
    watcher.step()
    source.requests = []
    watcher.step()
    assert load_event("grid-test").id == manual.id and load_event("grid-test").status == "active"
    assert sum("was started by manual, not this watcher" in line for line in texts(log)) == 1


def test_a_source_that_raises_is_logged_and_the_others_still_act() -> None:
    class Broken:
        name = "broken"

        def poll(self, now: float):
            raise ValueError("bad document")

    clock = Clock()
    watcher, nodes, log = make(clock, Broken(), Scripted(requests=[request("a", 20, clock.now, clock.now + 60)]))
    watcher.step()
    assert load_event("grid-test") is not None
    assert "ERROR ValueError: bad document" in texts(log)


def test_the_log_is_private_json_lines_with_correlation_ids(state: Path) -> None:
    clock = Clock()
    watcher, _, log = make(clock, Scripted(requests=[request("a", 20, clock.now, clock.now + 60)]))
    watcher.step()
    path = state / "grid" / "grid-test" / "watch.log"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    assert {entry["correlation_id"] for entry in entries} == {"corr-a"}
    assert all(entry.keys() == {"time", "level", "source", "correlation_id", "text"} for entry in entries)


def test_a_second_watcher_on_the_same_site_is_refused() -> None:
    refused = pytest.raises(SiteLockedError, match="grid watcher of site grid-test")
    with watcher_lock("grid-test"), refused, watcher_lock("grid-test"):
        pass
