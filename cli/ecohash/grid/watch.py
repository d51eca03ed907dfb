"""`ecohash grid watch`: follow the grid's signals and curtail the site with nobody at a keyboard.

Every tick the watcher polls its sources (OpenADR, schedules, price; grid/signals.py),
logs what they refused, and picks among the requests in force the one with the lowest
facility target (the deepest cut wins: every program asking is then met). It then starts,
changes or ends the site's curtailment event through the curtail machinery
(grid/actuate.py), exactly as `ecohash curtail` would, and logs each decision with its
reason and the signal's correlation id.

Safety, by construction:
- every event the watcher starts has an end (the signal's, else a lease it renews), so a
  watcher that crashes or is stopped leaves node overrides that expire on their own;
- what the watcher started is kept in grid/<site>/watch.json, so a restarted watcher
  resumes it instead of applying it again, and never releases an event a person started;
- one watcher per site (a lock held for its life); a curtail command in progress makes
  the watcher wait for the next tick, never the other way round;
- a request whose target caps cannot reach, or that is malformed, is logged and refused.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from datetime import timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol, TextIO

from pydantic import TypeAdapter, ValidationError

from ecohash.atomic import write_atomic
from ecohash.budget import Plan
from ecohash.errors import EcohashError, InvalidInputError
from ecohash.grid.actuate import CurtailRequest, event_status, release_event, start_event
from ecohash.grid.events import Event, load_event, make_dirs, site_dir
from ecohash.grid.evidence import append_line
from ecohash.grid.nodes import NodeLink
from ecohash.grid.price import PriceSource
from ecohash.grid.rule import CurtailmentInfeasibleError, Target, mw_text, solve
from ecohash.grid.schedule import ScheduleSource
from ecohash.grid.signals import LEASE_S, Ask, Refusal, Request, Source
from ecohash.inventory.model import OpenAdr
from ecohash.inventory.site import Site
from ecohash.locks import file_lock
from ecohash.paths import state_dir
from ecohash.timestamps import utc_time

STATE_FILE_NAME = "watch.json"
LOG_FILE_NAME = "watch.log"
# A leased event is renewed when less than this share of its lease is left.
RENEW_AT = Fraction(1, 3)


# --- The decision log ------------------------------------------------------------------------


class DecisionLog:
    """Every decision and refusal, as one human line on `stream` and one JSON line in the site's
    watch.log (0600): time, level, source, correlation id, text."""

    def __init__(self, site_name: str, stream: TextIO | None, clock: Callable[[], float] = time.time):
        self.path = site_dir(site_name) / LOG_FILE_NAME
        self.stream = stream
        self.clock = clock
        self.lines: list[dict[str, Any]] = []  # this run's, for tests and --once's summary
        # The watcher's thread and the OpenADR VEN's event loop both log: one line at a time.
        self._lock = threading.Lock()

    def __call__(self, level: str, correlation_id: str, text: str, source: str = "watch") -> None:
        entry = {"time": utc_time(self.clock()), "level": level, "source": source,
                 "correlation_id": correlation_id or "-", "text": text}
        with self._lock:
            self.lines.append(entry)
            if self.stream is not None:
                print(f"{entry['time']} {level:<7} [{entry['correlation_id']}] {source}: {text}",
                      file=self.stream, flush=True)
            make_dirs(self.path.parent)
            append_line(self.path, json.dumps(entry))


# --- What the watcher started: kept so a restart resumes it ------------------------------------


@dataclass
class Following:
    """The request the site's current event answers, as the watcher applied it."""

    event_id: str
    source: str
    key: str
    correlation_id: str
    ask: str
    end: float | None  # the request's end; None: leased
    applied_until: float | None  # the event's end as applied (the lease's, for a leased request)
    version: int
    restore_minutes: float | None


_FOLLOWING = TypeAdapter(Following)


def _state_file(site_name: str) -> Path:
    return site_dir(site_name) / STATE_FILE_NAME


def load_following(site_name: str) -> Following | None:
    path = _state_file(site_name)
    try:
        return _FOLLOWING.validate_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except ValidationError:
        raise InvalidInputError(f"{path}: not the watcher's state; move it aside to start afresh") from None


def save_following(site_name: str, following: Following | None) -> None:
    path = _state_file(site_name)
    if following is None:
        path.unlink(missing_ok=True)
        return
    make_dirs(path.parent)
    write_atomic(path, json.dumps(asdict(following), indent=1) + "\n")


# --- How the watcher acts on the site ----------------------------------------------------------


class Actuator(Protocol):
    """The curtail machinery as the watcher uses it (SiteActuator; a fake in unit tests)."""

    problems: list[str]  # what the last start or release could not carry out, for the log

    def start(self, request: Request, target: Target, duration: timedelta) -> Event: ...

    def release(self, ramp: timedelta | None) -> Event | None: ...


class SiteActuator:
    """The real thing: grid/actuate.py's start_event and release_event over SSH."""

    def __init__(self, site: Site, plan: Plan, settle_s: float = 10.0, link: NodeLink | None = None):
        self.site, self.plan, self.settle_s = site, plan, settle_s
        self.link = link  # None: SSH to the nodes per command, as `ecohash curtail` does
        self.problems: list[str] = []

    def start(self, request: Request, target: Target, duration: timedelta) -> Event:
        outcome = start_event(CurtailRequest(
            self.site, self.plan, target, program=request.ask.program, duration=duration,
            settle_s=self.settle_s, source=request.source, correlation_id=request.correlation_id,
            reason=request.reason, restore_minutes=request.ramp_minutes), link=self.link)
        self.problems = [] if outcome.ok else outcome.lines
        return outcome.event

    def release(self, ramp: timedelta | None) -> Event | None:
        outcome = release_event(self.site, self.plan, ramp=ramp, link=self.link)
        self.problems = [] if outcome is None or outcome.ok else outcome.lines
        return outcome.event if outcome is not None else None

    def measured_facility_w(self) -> float | None:
        """The site's measured facility draw now (OpenADR's TELEMETRY_USAGE), None if no node answered."""
        measured = event_status(self.site, self.plan, link=self.link)["measured"]
        if not measured["nodes"] or len(measured["unanswered"]) == len(measured["nodes"]):
            return None
        return float(measured["facility_draw_w"])


# --- The watcher -------------------------------------------------------------------------------


class Watcher:
    """One site's watcher: call step() every tick (the CLI's loop does; tests call it by hand)."""

    def __init__(self, site: Site, plan: Plan, sources: Sequence[Source], actuator: Actuator,
                 log: DecisionLog, clock: Callable[[], float] = time.time):
        self.site, self.plan, self.sources = site, plan, list(sources)
        self.actuator, self.log, self.clock = actuator, log, clock
        self.following = load_following(site.name)
        self._refused: set[tuple[str, int, str]] = set()  # (key, version, reason) already logged
        self._manual_noted: str | None = None
        self._resume()

    def _resume(self) -> None:
        following = self.following
        if following is None:
            return
        event = load_event(self.site.name)
        if event is not None and event.id == following.event_id and event.status == "active":
            self.log("INFO", following.correlation_id,
                     f"resuming event {event.id} ({following.ask}) started for {following.key}")
            return
        self.log("INFO", following.correlation_id,
                 f"the event {following.event_id} this watcher started is no longer in force; "
                 "following nothing")
        self._forget()

    def judge(self, ask: Ask) -> str | None:
        """None when caps can reach the ask's target (an OpenADR opt-in), else the reason."""
        try:
            solve(self.plan, ask.target(self.plan))
        except InvalidInputError as error:
            return str(error)
        return None

    def step(self) -> None:
        now = self.clock()
        requests: list[Request] = []
        for source in self.sources:
            try:
                asked, refused = source.poll(now)
            except Exception as error:  # a source's bug must not stop the others or the site's event
                self.log("ERROR", "-", f"{type(error).__name__}: {error}", source=source.name)
                continue
            for refusal in refused:
                self._refuse(refusal)
            requests.extend(request for request in asked if request.in_force(now))
        chosen = self._choose(requests)
        try:
            if chosen is None:
                self._end(now)
            else:
                self._follow(chosen[0], chosen[1], now)
        except EcohashError as error:
            # The site lock held by a person's curtail command, a node state file unreadable:
            # nothing changed; the next tick tries again.
            self.log("WARNING", chosen[0].correlation_id if chosen else "-", f"not acted on now: {error}")

    def _refuse(self, refusal: Refusal) -> None:
        self.log("REFUSED", refusal.correlation_id, refusal.reason, source=refusal.source)

    def _choose(self, requests: list[Request]) -> tuple[Request, Target] | None:
        """The deepest cut asked for: the lowest facility target among requests caps can reach."""
        candidates = []
        for request in requests:
            try:
                target = request.ask.target(self.plan)
                solve(self.plan, target)
            except (CurtailmentInfeasibleError, InvalidInputError) as error:
                mark = (request.key, request.version, str(error))
                if mark not in self._refused:
                    self._refused.add(mark)
                    self.log("REFUSED", request.correlation_id, f"{request.ask.text}: {error}",
                             source=request.source)
                continue
            candidates.append((target.facility_w, request.start, request.key, request, target))
        if not candidates:
            return None
        best = min(candidates, key=lambda c: c[:3])
        return best[3], best[4]

    def _follow(self, request: Request, target: Target, now: float) -> None:
        site_event = load_event(self.site.name)
        following = self.following
        ours = following is not None and site_event is not None and site_event.id == following.event_id
        if site_event is not None and site_event.state(now) == "active" and not ours:
            if self._manual_noted != site_event.id:
                self._manual_noted = site_event.id
                self.log("WARNING", request.correlation_id,
                         f"event {site_event.id} ({site_event.target_label}) was started by "
                         f"{site_event.source}, not this watcher: it is left as it is; "
                         f"{request.reason} waits until it ends")
            return
        if ours and following is not None and site_event is not None and site_event.state(now) == "active":
            same = (following.key, following.version, following.ask, following.end) == (
                request.key, request.version, request.ask.text, request.end)
            if same and not self._lease_due(following, now):
                return
            verb = "renews" if same else "changes to"
        else:
            verb = "starts"
        until = request.end if request.end is not None else now + LEASE_S
        program = request.ask.program
        if program is not None and program.max_hours is not None:
            until = min(until, now + float(Fraction(str(program.max_hours)) * 3600))
        self.log("INFO", request.correlation_id,
                 f"{verb} curtailment: {request.ask.text} ({target.label}, "
                 f"{mw_text(target.facility_w)} MW at the meter) until {utc_time(until)}"
                 f"{' (lease)' if request.end is None else ''}: {request.reason}", source=request.source)
        event = self.actuator.start(request, target, timedelta(seconds=max(until - now, 1.0)))
        self.following = Following(
            event_id=event.id, source=request.source, key=request.key,
            correlation_id=request.correlation_id, ask=request.ask.text, end=request.end,
            applied_until=event.end, version=request.version, restore_minutes=request.ramp_minutes)
        save_following(self.site.name, self.following)
        problems = self.actuator.problems
        held = f"; {len(event.held)} node(s) held at their last cap" if event.held else ""
        self.log("INFO" if not problems else "WARNING", request.correlation_id,
                 f"event {event.id}: caps applied on {len(event.nodes)} GPU node(s){held}"
                 + (f"; {'; '.join(problems)}" if problems else ""), source=request.source)

    def _lease_due(self, following: Following, now: float) -> bool:
        if following.end is not None or following.applied_until is None:
            return False
        return following.applied_until - now < LEASE_S * RENEW_AT

    def _end(self, now: float) -> None:
        following = self.following
        if following is None:
            return
        site_event = load_event(self.site.name)
        if site_event is None or site_event.id != following.event_id or site_event.status != "active":
            self.log("INFO", following.correlation_id,
                     f"event {following.event_id} ended outside this watcher; following nothing")
            self._forget()
            return
        ramp = timedelta(minutes=following.restore_minutes) if following.restore_minutes else None
        self.log("INFO", following.correlation_id,
                 f"releases event {site_event.id}: no signal asks for a curtailment any more "
                 f"(last: {following.ask} for {following.key})"
                 + (f", over a {following.restore_minutes:g} min ramp" if ramp else ", at once"),
                 source=following.source)
        released = self.actuator.release(ramp)
        problems = self.actuator.problems
        if released is not None and released.status != "released":
            self.log("WARNING", following.correlation_id,
                     f"event {released.id} not fully released: {'; '.join(problems)}; trying again next tick")
            return
        self.log("INFO", following.correlation_id, f"event {following.event_id} released",
                 source=following.source)
        self._forget()

    def _forget(self) -> None:
        self.following = None
        save_following(self.site.name, None)


@contextmanager
def watcher_lock(site_name: str) -> Iterator[None]:
    """One watcher per site: a second is refused at once, naming the first."""
    with file_lock(state_dir() / "locks" / f"{site_name}.watch.lock", f"grid watcher of site {site_name}",
                   "grid watch"):
        yield


# --- Running it ----------------------------------------------------------------------------------

# How often the watcher looks at its sources. Schedules and prices change on minutes; an
# OpenADR event's start is known ahead. A second keeps a start within ~1 s of its time.
TICK_S = 1.0


def build_sources(site: Site, openadr: OpenAdr | None, watcher: Watcher,
                  telemetry: Callable[[], float | None], *,
                  insecure_vtn: bool = False) -> tuple[list[Source], Any]:
    """The site's signal sources: a schedule and a price source per program that has them,
    and the OpenADR VEN when `openadr` is given (`insecure_vtn`: one not pinned is followed,
    with a warning at its start). Returns (sources, the VEN or None)."""
    sources: list[Source] = []
    for program in site.curtailment_programs:
        if program.windows:
            sources.append(ScheduleSource(site, program))
        if program.price is not None:
            sources.append(PriceSource(site, program))
    ven = None
    if openadr is not None:
        # Lazy: openleadr (and its aiohttp) loads only for a site that follows an OpenADR VTN.
        from ecohash.grid.openadr import OpenAdrVen

        def log(level: str, correlation_id: str, text: str) -> None:
            watcher.log(level.upper(), correlation_id, text, source="openadr")

        # openleadr logs whole messages at INFO (event payloads, and the XML it sent on an
        # HTTP error): the watcher's own lines say what matters, once.
        import logging

        logging.getLogger("openleadr").setLevel(logging.WARNING)

        ven = OpenAdrVen(site, openadr, judge=watcher.judge, telemetry=telemetry, log=log,
                         clock=watcher.clock, insecure=insecure_vtn)
        sources.append(ven)
    return sources, ven


async def run(watcher: Watcher, ven: Any, stop_after_s: float | None, tick_s: float = TICK_S) -> None:
    """Step the watcher every tick until `stop_after_s`, SIGTERM or SIGINT. Stopping leaves the
    site's event as it is: its node overrides end on their own, and a new watcher resumes it."""
    import asyncio
    import signal

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stop.set)
    deadline = None if stop_after_s is None else loop.time() + stop_after_s
    try:
        if ven is not None:
            await ven.start()
        while not stop.is_set():
            await asyncio.to_thread(watcher.step)
            wait = tick_s if deadline is None else min(tick_s, deadline - loop.time())
            if wait <= 0:
                break
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
    finally:
        if ven is not None:
            await ven.stop()
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(number)
        following = watcher.following
        if following is not None:
            watcher.log("INFO", following.correlation_id,
                        f"stopping: event {following.event_id} stays in force until "
                        f"{utc_time(following.applied_until) if following.applied_until else 'released'} "
                        "(node overrides end on their own); a new watcher resumes it")
        else:
            watcher.log("INFO", "-", "stopping: no event in force")
