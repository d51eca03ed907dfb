"""The OpenADR VEN against openleadr's own VTN (OpenADRServer) on loopback, in real time.

openleadr sends durations in whole seconds, so the VTN asks for a poll every second.
Each test runs one asyncio loop of its own (run()) with a VTN on a free port and stops
both before the loop closes. Events start a second or so ahead and last a few seconds.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest
from openleadr import utils

from ecohash.errors import InvalidInputError
from ecohash.grid.openadr import OpenAdrVen, SignalRefused, requests_for_event
from ecohash.grid.signals import Ask, Request
from ecohash.inventory import load_site_text
from ecohash.inventory.site import Site
from tests.grid.pki import certificate
from tests.grid.sites import SITE
from tests.grid.vtn import KW, UTC, VEN_ID, Vtn, free_port

T = TypeVar("T")


def run(scenario: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, less its set_event_loop(None): after that, later tests' get_event_loop() fails."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(scenario)
    finally:
        left = asyncio.all_tasks(loop)
        for task in left:
            task.cancel()
        if left:  # gather() of nothing would make its future on another loop
            loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


@pytest.fixture(autouse=True)
def no_thread_outlives_its_test():
    before = set(threading.enumerate())
    yield
    assert set(threading.enumerate()) - before == set()


def openadr_site(port: int, *lines: str, file: str = "grid-test.yaml", scheme: str = "http") -> Site:
    section = ("      openadr:\n"
               f"        vtn_url: {scheme}://127.0.0.1:{port}/OpenADR2/Simple/2.0b\n"
               "        ven_name: grid-test-ven\n"
               "        levels: {3: ers-10}\n" + "".join(f"        {line}\n" for line in lines))
    return load_site_text(SITE.replace("  network:\n", section + "  network:\n"), file)


class Ven:
    """An OpenAdrVen with a judge, telemetry and log the test controls. Insecure unless told: most
    tests here are about events, over plain http on loopback (test_vtn_trust.py is about trust)."""

    def __init__(self, site: Site, judge: Callable[[Ask], str | None] = lambda ask: None,
                 draw_w: float | None = 812_500.0, retry_s: float = 30, insecure: bool = True) -> None:
        self.log: list[tuple[str, str, str]] = []
        assert site.power.curtailment.openadr is not None
        self.ven = OpenAdrVen(site, site.power.curtailment.openadr, judge=judge, telemetry=lambda: draw_w,
                              log=lambda *line: self.log.append(line), retry_s=retry_s, insecure=insecure)

    def requests(self, now: float | None = None) -> list[Request]:
        return self.ven.poll(time.time() if now is None else now)[0]

    def said(self, text: str) -> list[tuple[str, str, str]]:
        return [line for line in self.log if text in line[2]]


async def until(condition: Callable[[], object], timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


@asynccontextmanager
async def vtn_and_ven(**ven_options) -> AsyncIterator[tuple[Vtn, Ven]]:
    port = free_port()
    vtn = Vtn(port)
    await vtn.server.run()
    ven = Ven(openadr_site(port), **ven_options)
    try:
        await ven.ven.start()
        yield vtn, ven
    finally:
        await ven.ven.stop()
        await vtn.server.stop()


# The 2.0b schema enumerates the signal's name in both cases; openleadr's examples send "simple".
@pytest.mark.parametrize("signal_name", ["SIMPLE", "simple"])
def test_simple_levels_become_requests_merged_by_run_and_opted_in(signal_name: str):
    async def scenario():
        async with vtn_and_ven() as (vtn, ven):
            assert ven.said("registered with the VTN at http://127.0.0.1:")
            # The first interval must not be over before the next poll (1 s) delivers it.
            event_id = vtn.add_event(signal_name, "level", [2, 3, 3, 0], start_in=2, seconds=2)
            await until(lambda: vtn.opts.get(event_id))
            assert vtn.opts[event_id] == ["optIn"]
            start = vtn.event(event_id).event_signals[0].intervals[0].dtstart.timestamp()
            by_pct, program = ven.requests(start)
            assert (by_pct.key, by_pct.correlation_id, by_pct.source, by_pct.version) == (
                f"openadr:{event_id}:0", event_id, "openadr", 0)
            assert (by_pct.ask, by_pct.start, by_pct.end, by_pct.restore_minutes) == (
                Ask(by_pct=Decimal(20)), start, start + 2, None)
            # Levels 3, 3 are one run; level 3 is mapped to ers-10, whose restore ramp comes along.
            assert program.ask.program is not None and program.ask.program.name == "ers-10"
            assert (program.start, program.end, program.restore_minutes) == (start + 2, start + 6, 2.0)
            assert "SIMPLE level 3 -> program ers-10" in program.reason
            assert ven.requests(start + 6) == []
            assert ven.said(f"event {event_id} received, opted in: OpenADR event {event_id}")

    run(scenario())


def test_an_event_the_caps_cannot_reach_is_opted_out_with_the_reason_logged():
    asked: list[Ask] = []

    def judge(ask: Ask) -> str | None:
        asked.append(ask)
        return "the caps reach 96.3 kW at most, above the target of 91.2 kW"

    async def scenario():
        async with vtn_and_ven(judge=judge) as (vtn, ven):
            event_id = vtn.add_event("SIMPLE", "level", [1])
            await until(lambda: vtn.opts.get(event_id))
            assert vtn.opts[event_id] == ["optOut"]
            assert asked == [Ask(by_pct=Decimal(10))]
            requests, refusals = ven.ven.poll(time.time())
            assert requests == [] and [r.correlation_id for r in refusals] == [event_id]
            assert refusals[0].reason.startswith(f"event {event_id} opted out: by 10%: the caps reach 96.3 kW")

    run(scenario())


def test_cancellation_withdraws_and_modification_replaces_the_request():
    async def scenario():
        async with vtn_and_ven() as (vtn, ven):
            kept, cancelled = vtn.add_event("SIMPLE", "level", [2]), vtn.add_event("SIMPLE", "level", [1])
            # The VTN takes an opt only for the modification it has now: let the first opts land.
            await until(lambda: vtn.opts.get(kept) and vtn.opts.get(cancelled))
            assert len(ven.requests()) == 2
            vtn.modify(kept, [1])
            vtn.server.cancel_event(VEN_ID, cancelled)
            await until(lambda: [request.key for request in ven.requests()] == [f"openadr:{kept}:0"]
                        and ven.requests()[0].version == 1)
            assert ven.requests()[0].ask == Ask(by_pct=Decimal(10))
            await until(lambda: vtn.opts.get(kept) == ["optIn", "optIn"])
            assert ven.said(f"event {kept} modified, opted in: OpenADR event {kept} (modification 1)")
            assert ven.said(f"event {cancelled} cancelled by the VTN (modification 1); its requests are "
                            "withdrawn")

    run(scenario())


def test_load_dispatch_setpoints_and_deltas_in_kw_become_mw_targets():
    async def scenario():
        async with vtn_and_ven() as (vtn, ven):
            setpoint = vtn.add_event("LOAD_DISPATCH", "setpoint", [500], measurement=KW)
            delta = vtn.add_event("LOAD_DISPATCH", "delta", [-250, -250], measurement=KW)
            await until(lambda: len(ven.requests()) == 2)
            asks = {request.correlation_id: (request.ask, request.end - request.start)
                    for request in ven.requests()}
            assert asks == {setpoint: (Ask(to_mw=Decimal("0.5")), 3), delta: (Ask(by_mw=Decimal("0.25")), 6)}
            await until(lambda: vtn.opts.get(setpoint) == vtn.opts.get(delta) == ["optIn"])

    run(scenario())


def test_implausible_events_are_refused_and_opted_out_never_held():
    async def scenario():
        async with vtn_and_ven() as (vtn, ven):
            refused = {
                vtn.add_event("x-loadShed", "level", [1]): "signal 'x-loadShed' is not one ecohash acts on",
                vtn.add_event("LOAD_DISPATCH", "setpoint", [-100], measurement=KW):
                    "LOAD_DISPATCH setpoint -0.1 MW is not a positive draw",
                vtn.add_event("LOAD_DISPATCH", "setpoint", [1500], measurement=KW):
                    "LOAD_DISPATCH setpoint 1.5 MW is above the site's grid capacity of 1 MW",
                vtn.add_event("LOAD_DISPATCH", "delta", [100], measurement=KW):
                    "asks for no less load (a curtailment is a negative delta)",
                vtn.add_event("LOAD_DISPATCH", "setpoint", [500]): "LOAD_DISPATCH signal names no unit",
            }
            over = vtn.add_event("SIMPLE", "level", [2], start_in=-5, seconds=2)
            await until(lambda: all(vtn.opts.get(event_id) for event_id in refused))
            refusals: list = []

            def heard_over() -> bool:
                requests, more = ven.ven.poll(time.time())
                assert requests == []
                refusals.extend(more)
                return any(refusal.correlation_id == over for refusal in refusals)

            await until(heard_over)
            requests = []
            assert requests == []
            reasons = {refusal.correlation_id: refusal.reason for refusal in refusals}
            assert set(reasons) == {*refused, over}
            for event_id, why in refused.items():
                assert vtn.opts[event_id] == ["optOut"]
                assert reasons[event_id].startswith(f"event {event_id} refused, opted out: ")
                assert why in reasons[event_id]
            assert "it is already over" in reasons[over]
            assert ven.ven.poll(time.time())[1] == []  # each refusal is handed out once
            assert ven.said("refused") == []  # the watcher logs what poll hands out: once

    run(scenario())


def test_the_vtn_receives_the_measured_draw_as_telemetry_usage():
    async def scenario():
        async with vtn_and_ven(draw_w=812_500.0) as (vtn, ven):
            await until(lambda: len(vtn.telemetry) >= 2)
            assert set(vtn.telemetry) == {812_500.0}

    run(scenario())


def test_a_vtn_that_stops_answering_leaves_the_held_event_to_run_to_its_end():
    async def scenario():
        async with vtn_and_ven() as (vtn, ven):
            event_id = vtn.add_event("SIMPLE", "level", [2], seconds=30)
            await until(ven.requests)
            await vtn.server.stop()
            await asyncio.sleep(3.5)  # past 3 poll intervals of 1 s
            (held,) = ven.requests()
            assert held.correlation_id == event_id
            assert ven.requests(held.end - 1) == [held]
            assert ven.requests(held.end) == []
            lost = ven.said("lost contact with the VTN at http://127.0.0.1:")
            assert len(lost) == 1 and f"events {event_id} run to their end" in lost[0][2]

    run(scenario())


def test_a_vtn_not_up_yet_is_registered_with_when_it_comes():
    async def scenario():
        port = free_port()
        ven = Ven(openadr_site(port), retry_s=0.2)
        vtn = Vtn(port)
        try:
            await ven.ven.start()
            (warning,) = ven.said("did not register grid-test-ven (cannot reach it: ClientConnectorError: ")
            assert warning[2].endswith("]); trying again every 0.2 s")
            await vtn.server.run()
            await until(lambda: ven.said("registered with the VTN"))
        finally:
            await ven.ven.stop()
            await vtn.server.stop()

    run(scenario())


def test_signed_messages_from_a_vtn_with_another_fingerprint_are_refused(tmp_path):
    vtn_cert, vtn_key = certificate(tmp_path, "vtn")
    certificate(tmp_path, "ven")
    right = utils.certificate_fingerprint(Path(vtn_cert).read_bytes())
    wrong = ":".join(["00"] * 10)

    async def scenario(fingerprint: str) -> Ven:
        port = free_port()
        vtn = Vtn(port, cert=vtn_cert, key=vtn_key)
        await vtn.server.run()
        ven = Ven(openadr_site(port, "cert: ven.pem", "key: ven.key", f"vtn_fingerprint: '{fingerprint}'",
                               file=str(tmp_path / "site.yaml")))
        try:
            await ven.ven.start()
        finally:
            await ven.ven.stop()
            await vtn.server.stop()
        return ven

    signed = run(scenario(right))
    assert signed.said("registered with the VTN") and signed.said("this VEN's certificate fingerprint")
    assert not any("BEGIN" in text for _, _, text in signed.log)
    assert run(scenario(wrong)).said("did not register grid-test-ven")


def test_a_key_others_can_read_is_refused_before_anything_is_sent(tmp_path):
    certificate(tmp_path, "ven")
    (tmp_path / "ven.key").chmod(0o644)
    site = openadr_site(free_port(), "cert: ven.pem", "key: ven.key", file=str(tmp_path / "site.yaml"))
    ven = Ven(site)
    with pytest.raises(InvalidInputError, match=r"openadr key .*/ven.key can be read by others \(mode 0644\); "
                                                r"chmod 600 it"):
        run(ven.ven.start())


@pytest.mark.parametrize(("scale", "amount", "expected"), [
    ("none", 250_000, Ask(to_mw=Decimal("0.25"))),
    ("k", 250, Ask(to_mw=Decimal("0.25"))),
    ("M", 0.25, Ask(to_mw=Decimal("0.25"))),
    ("M", 1, Ask(to_mw=Decimal("1"))),
])
def test_load_dispatch_units(scale, amount, expected):
    (request,) = requests_for_event(openadr_site(1), openadr_site(1).power.curtailment.openadr,
                                    dispatch_event(scale, amount), now=0)
    assert request.ask == expected and str(request.ask.to_mw) == str(expected.to_mw)


# What openleadr's own VTN will not send (it checks SIMPLE levels itself), other VTNs may.
@pytest.mark.parametrize(("signal", "message"), [
    ({"signal_type": "setpoint", "measurement": {"unit": "W", "scale": "m"}},
     "LOAD_DISPATCH unit mW is not W, kW or MW"),
    ({"signal_type": "setpoint", "measurement": {"unit": "Wh", "scale": "k"}},
     "LOAD_DISPATCH unit kWh is not W, kW or MW"),
    ({"signal_type": "multiplier", "measurement": {"unit": "W"}},
     "LOAD_DISPATCH signal of type 'multiplier', not setpoint or delta"),
    ({"signal_name": "SIMPLE", "signal_type": "level"}, "SIMPLE level 4 is not 0, 1, 2 or 3"),
    ({"signal_name": "SIMPLE", "signal_type": "level", "payload": 1.5}, "SIMPLE level 1.5 is not 0, 1, 2 or 3"),
    ({"signal_name": "SIMPLE", "signal_type": "level", "payload": "2"}, "SIMPLE interval 0 has no numeric payload"),
    ({"signal_name": "SIMPLE", "signal_type": "level", "intervals": []}, "SIMPLE signal has no intervals"),
])
def test_signals_other_vtns_may_send_are_refused(signal, message):
    site = openadr_site(1)
    event = dispatch_event("k", 4)
    event["event_signals"][0].update({key: value for key, value in signal.items() if key != "payload"})
    if "payload" in signal:
        event["event_signals"][0]["intervals"][0]["signal_payload"] = signal["payload"]
    with pytest.raises(SignalRefused, match=f"^{re.escape(message)}"):
        requests_for_event(site, site.power.curtailment.openadr, event, now=0)


def dispatch_event(scale: str, amount: float) -> dict:
    start = dt.datetime(2026, 7, 15, 20, tzinfo=UTC)
    return {"event_descriptor": {"event_id": "e1", "modification_number": 0},
            "active_period": {"dtstart": start, "duration": dt.timedelta(hours=1)},
            "event_signals": [{"signal_name": "LOAD_DISPATCH", "signal_type": "setpoint",
                               "measurement": {"name": "powerReal", "unit": "W", "scale": scale},
                               "intervals": [{"duration": dt.timedelta(hours=1), "signal_payload": amount}]}]}


def test_an_event_over_by_the_site_clock_is_refused_and_one_half_over_keeps_what_is_left():
    site = openadr_site(1)
    event = dispatch_event("k", 500)
    end = dt.datetime(2026, 7, 15, 21, tzinfo=UTC).timestamp()
    with pytest.raises(SignalRefused, match=r"^it is already over \(ended 2026-07-15 21:00:00 UTC\)$"):
        requests_for_event(site, site.power.curtailment.openadr, event, now=end)
    event["event_signals"][0]["intervals"] = [{"duration": dt.timedelta(minutes=30), "signal_payload": 500},
                                              {"duration": dt.timedelta(minutes=30), "signal_payload": 400}]
    (left,) = requests_for_event(site, site.power.curtailment.openadr, event, now=end - 60)
    assert (left.ask, left.start, left.end, left.key) == (Ask(to_mw=Decimal("0.4")), end - 1800, end, "openadr:e1:1")


def test_a_certificate_that_is_not_one_is_a_clear_error(tmp_path):
    certificate(tmp_path, "ven")
    (tmp_path / "ven.pem").write_text("not a certificate\n")
    site = openadr_site(free_port(), "cert: ven.pem", "key: ven.key", file=str(tmp_path / "site.yaml"))
    with pytest.raises(InvalidInputError, match=r"^openadr: cert \S+/ven.pem and key \S+/ven.key: "):
        run(Ven(site).ven.start())
