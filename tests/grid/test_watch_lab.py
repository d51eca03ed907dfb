"""`ecohash grid watch` on the lab: signals curtail real hosts and release them, unattended.

- OpenADR: openleadr's own VTN (OpenADRServer) on loopback, the watcher as a real process
  (`ecohash grid watch lab --vtn ...`): an event curtails the lab at its start and releases
  it at its end; the VTN receives the opt-in and telemetry.
- A 4CP window and a price spike: the watcher in this process under a fake clock, its caps
  over SSH to the lab's hosts through the curtail machinery.
The lab's GPUs are SIMULATED (draw = min(demand, enforced limit)); everything else is real.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ecohash.budget import compile_budget
from ecohash.grid.events import load_event
from ecohash.grid.rule import solve, target_for
from ecohash.grid.watch import DecisionLog, SiteActuator, Watcher, build_sources
from ecohash.inventory import load_site
from ecohash.paths import state_dir
from tests.grid.test_curtail_lab import SITE_FILE, ecohash, enforced, planned_caps
from tests.grid.vtn import Vtn, VtnThread
from tests.labhosts import Lab
from tests.roles.bootstraps import ECOHASH, LAB_HOSTS

pytestmark = pytest.mark.lab

CHICAGO = ZoneInfo("America/Chicago")


@pytest.fixture(scope="module")
def provisioned(provisioned_lab: Lab) -> Iterator[Lab]:
    try:
        yield provisioned_lab
    finally:
        ecohash("curtail", "lab", "--release")


def caps_for(pct: int) -> dict[str, int]:
    plan = compile_budget(load_site(SITE_FILE))
    return solve(plan, target_for(plan, by_pct=pct)).caps_w


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds it took until `condition` held; fails naming `what` after `timeout`."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"timed out waiting for {what}"
        time.sleep(0.25)
    return time.monotonic() - started


def lab_caps(lab: Lab) -> dict[str, list[float]]:
    return {name: enforced(lab, name) for name in LAB_HOSTS}


def at(caps: dict[str, int]) -> dict[str, list[float]]:
    return {name: [float(caps[name])] * 2 for name in LAB_HOSTS}


def test_an_openadr_event_curtails_the_lab_at_its_start_and_releases_it_at_its_end(provisioned: Lab) -> None:
    lab = provisioned
    planned, expected = planned_caps(), caps_for(20)  # SIMPLE level 2, no levels mapped: by 20%
    assert all(expected[name] < planned[name] for name in LAB_HOSTS)
    with VtnThread("lab") as vtn:
        # Plain http on loopback: the warning --insecure-vtn logs does not make the exit status 1.
        watcher = subprocess.Popen([ECOHASH, "grid", "watch", "lab", "--vtn", vtn.url, "--ven-name", "lab-ven",
                                    "--insecure-vtn", "--for", "150s"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: vtn.vtn.registered, 30, "the VEN's registration")
            start_in, seconds = 8, 30
            event_id = vtn.call(_add(vtn.vtn, start_in, seconds))
            starts = time.monotonic() + start_in
            wait_for(lambda: lab_caps(lab) == at(expected), start_in + 20, "the event's caps")
            assert time.monotonic() - starts < 10, "caps later than 10 s after the event's start"
            assert time.monotonic() < starts + seconds
            wait_for(lambda: lab_caps(lab) == at(planned), seconds + 20, "the planned caps after the end")
            assert time.monotonic() >= starts + seconds - 1, "released before the event's end"
            wait_for(lambda: bool(vtn.vtn.telemetry), 30, "telemetry")
            assert vtn.vtn.opts[event_id] == ["optIn"]
            assert all(value > 0 for value in vtn.vtn.telemetry)
        finally:
            watcher.send_signal(signal.SIGTERM)
            out, err = watcher.communicate(timeout=60)
    assert watcher.returncode == 0, err
    assert f"[{event_id}] openadr: starts curtailment: by 20%" in err, err
    assert f"[{event_id}] openadr: releases event" in err, err
    log = [json.loads(line) for line in (state_dir() / "grid" / "lab" / "watch.log").read_text().splitlines()]
    assert any(entry["correlation_id"] == event_id and entry["text"].startswith("starts") for entry in log)
    event = load_event("lab")
    assert event is not None and (event.source, event.correlation_id, event.status) == ("openadr", event_id,
                                                                                        "released")


async def _add(vtn: Vtn, start_in: float, seconds: float) -> str:
    return vtn.add_event("SIMPLE", "level", [2], start_in=start_in, seconds=seconds)


@pytest.fixture
def signal_site(provisioned: Lab) -> Iterator[tuple[Lab, Path]]:
    """The lab's site with a 4CP program (a July Wednesday's afternoon, with an alert) and a
    price trigger, beside the lab's own file so its relative paths (ssh config) hold."""
    alert = SITE_FILE.parent / "peak-alert.json"
    prices = SITE_FILE.parent / "prices.json"
    text = SITE_FILE.read_text()
    programs = (
        "    curtailment:\n      programs:\n"
        "        - {name: cp4, by_pct: 15, restore_minutes: 0, windows: [{months: [7], weekdays: [wed], "
        "start: '15:00', end: '17:30', timezone: America/Chicago}], alert: {file: peak-alert.json}}\n"
        "        - {name: spike, by_pct: 25, price: {file: prices.json, strike: 1000, intervals: 2}}\n"
    )
    assert "curtailment" not in text
    site = SITE_FILE.parent / "site-signals.yaml"
    pue_line = next(line for line in text.splitlines() if line.startswith("    pue:"))
    site.write_text(text.replace(pue_line + "\n", pue_line + "\n" + programs))
    try:
        yield provisioned, site
    finally:
        for path in (site, alert, prices):
            path.unlink(missing_ok=True)


def local(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=CHICAGO).timestamp()


def test_a_4cp_window_and_a_price_spike_curtail_the_lab_under_a_fake_clock(
        signal_site: tuple[Lab, Path]) -> None:
    lab, site_file = signal_site
    site = load_site(site_file)
    plan = compile_budget(site)
    planned = planned_caps()
    clock = _Clock(local("2026-07-15T14:59:00"))
    log = DecisionLog(site.name, None, clock)
    watcher = Watcher(site, plan, [], SiteActuator(site, plan, settle_s=0), log, clock)
    watcher.sources, _ = build_sources(site, None, watcher, lambda: None)
    (site_file.parent / "peak-alert.json").write_text('{"date": "2026-07-15", "peak_likely": true}')
    (site_file.parent / "prices.json").write_text('{"intervals": []}')

    def caps_now() -> dict[str, list[float]]:
        return lab_caps(lab)

    watcher.step()
    assert load_event("lab") is None or load_event("lab").status != "active"
    clock.now = local("2026-07-15T15:00:05")
    watcher.step()
    assert caps_now() == at(caps_for(15))
    assert load_event("lab").source == "schedule"
    clock.now = local("2026-07-15T17:30:01")
    watcher.step()
    assert caps_now() == at(planned)
    assert load_event("lab").status == "released"

    # A price spike: two 5-minute intervals above the strike, then one below.
    spike = local("2026-08-03T18:00:00")
    intervals = [(spike - 600, spike - 300, 1500), (spike - 300, spike, 2200), (spike, spike + 300, 800)]
    (site_file.parent / "prices.json").write_text(json.dumps({"intervals": [
        {"start": _iso(start), "end": _iso(end), "price": price} for start, end, price in intervals]}))
    clock.now = spike - 400  # only one interval above the strike so far
    watcher.step()
    assert caps_now() == at(planned)
    clock.now = spike - 10
    watcher.step()
    assert caps_now() == at(caps_for(25))
    assert load_event("lab").source == "price"
    clock.now = spike + 10
    watcher.step()
    assert caps_now() == at(planned)
    levels = [line["level"] for line in log.lines]
    assert "ERROR" not in levels and "WARNING" not in levels, log.lines


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, CHICAGO).isoformat()
