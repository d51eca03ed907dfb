"""The site's OpenADR 2.0b VEN: events from the utility's VTN become Requests for `ecohash grid watch`.

Built on openleadr's client, which registers, polls the VTN and answers each event with the
opt this module chooses. An event becomes one Request per run of consecutive intervals that
ask the same thing (SIMPLE levels, LOAD_DISPATCH setpoints or deltas); the VEN opts in when
the watcher's judge says the site's caps can reach every target, out (with the reason)
otherwise, and refuses outright what it cannot read as a curtailment (docs/grid-watch.md).

openleadr runs on an asyncio loop (start/stop); the watcher polls from its own thread, so
everything poll() reads is kept under a lock and handed out as a snapshot. Which VTN the VEN
will follow, and which of its answers count as contact, is vtn_trust.py's.
"""

from __future__ import annotations

import asyncio
import ssl
import stat
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from openleadr import OpenADRClient, enums, objects, utils

from ecohash.errors import EcohashError, InvalidInputError
from ecohash.grid.rule import find_program
from ecohash.grid.signals import Ask, Refusal, Request
from ecohash.grid.vtn_trust import INSECURE_FLAG, PIN_IT, Contact, tls_context, trust_problem
from ecohash.inventory.model import DEFAULT_LEVEL_PCT, OpenAdr
from ecohash.inventory.site import Site

SOURCE = "openadr"
SIMPLE, LOAD_DISPATCH = "SIMPLE", "LOAD_DISPATCH"
# The signal names ecohash acts on, as the 2.0b schema enumerates them: it lists SIMPLE in
# both cases (SignalNameEnumeratedType has "SIMPLE" and "simple"), and openleadr's own
# examples send the lowercase one. Both are the same signal.
SIGNAL_NAMES = {"SIMPLE": SIMPLE, "simple": SIMPLE, LOAD_DISPATCH: LOAD_DISPATCH}
# LOAD_DISPATCH amounts are real power: W times the signal's SI scale. Other scales (mW, GW)
# are not what a site's dispatch looks like, so they are refused rather than guessed at.
WATTS_PER_UNIT = {"none": 1, "k": 10**3, "M": 10**6}
OPT_IN, OPT_OUT = "optIn", "optOut"
# A VTN not heard from for this many of its own poll intervals has stopped answering.
LOST_AFTER_POLLS = 3
REGISTER_RETRY_S = 30.0
# The VTN picks the telemetry interval within these bounds (oadrRegisterReport).
TELEMETRY_RATE = objects.SamplingRate(min_period=timedelta(seconds=1), max_period=timedelta(hours=1),
                                      on_change=False)


class SignalRefused(Exception):
    """An event that cannot be read as a curtailment: the reason, for the log and the Refusal."""


class OpenAdrVen:
    """The site's VEN, a signal source for the watcher (grid/signals.py)."""

    name = SOURCE

    def __init__(self, site: Site, config: OpenAdr, *, judge: Callable[[Ask], str | None],
                 telemetry: Callable[[], float | None], log: Callable[[str, str, str], None],
                 clock: Callable[[], float] = time.time, retry_s: float = REGISTER_RETRY_S,
                 insecure: bool = False) -> None:
        self.site = site
        self.config = config
        self._insecure = insecure
        self._judge = judge
        self._telemetry = telemetry
        self._log = log
        self._clock = clock
        self._retry_s = retry_s
        self._lock = threading.Lock()
        self._held: dict[str, list[Request]] = {}  # by event id
        self._refusals: list[Refusal] = []
        self._client: OpenADRClient | None = None
        self._registering: asyncio.Task[None] | None = None
        self._contact = Contact(config.vtn_url, clock)
        self._contact_lost = False

    # -- the watcher's side --------------------------------------------------------------

    def poll(self, now: float) -> tuple[list[Request], list[Refusal]]:
        """The requests of the events held (ended ones dropped), and refusals since the last poll."""
        with self._lock:
            for event_id, requests in list(self._held.items()):
                left = [request for request in requests if request.end is None or request.end > now]
                if left:
                    self._held[event_id] = left
                else:
                    del self._held[event_id]
            requests = [request for held in self._held.values() for request in held]
            refusals, self._refusals = self._refusals, []
        self._check_contact(now)
        return requests, refusals

    async def start(self) -> None:
        """Register with the VTN and follow it; a VTN not answering yet is tried again in the background."""
        self._check_trust()
        self._check_key()
        if not await self._register():
            self._log("warning", SOURCE, f"the VTN at {self.config.vtn_url} did not register "
                      f"{self.config.ven_name}{self._why(' (', ')')}; trying again every {self._retry_s:g} s")
            self._registering = asyncio.create_task(self._register_until_done())

    async def stop(self) -> None:
        if self._registering is not None:
            self._registering.cancel()
            await asyncio.gather(self._registering, return_exceptions=True)
            self._registering = None
        if self._client is not None:
            await self._client.stop()
            self._client = None

    # -- registration ----------------------------------------------------------------------

    async def _register_until_done(self) -> None:
        while True:
            await asyncio.sleep(self._retry_s)
            if await self._register():
                return

    async def _register(self) -> bool:
        try:
            client = self._new_client()
            try:
                await client.run()
            except asyncio.CancelledError:  # stop() while registering: close what was opened
                if client.client_session is not None:
                    await client.stop()
                raise
        except (OSError, ssl.SSLError, ValueError) as error:  # the messages name files, never contents
            raise InvalidInputError(f"openadr: cannot use the VEN's certificate, key or CA file: "
                                    f"{error}") from None
        if client.registration_id is None:  # openleadr has stopped the client already
            return False
        self._client = client
        self._contact.heard_at = self._clock()
        self._log("info", SOURCE, f"registered with the VTN at {self.config.vtn_url} as "
                  f"{self.config.ven_name} (ven id {client.ven_id}); polling every "
                  f"{client.poll_frequency.total_seconds():g} s")
        return True

    def _new_client(self) -> OpenADRClient:
        config = self.config
        cert, key = self._path(config.cert), self._path(config.key)
        ca_file = self._path(config.ca_file)
        context = tls_context(ca_file, cert, key)
        client = OpenADRClient(ven_name=config.ven_name, vtn_url=str(config.vtn_url), cert=cert, key=key,
                               vtn_fingerprint=config.vtn_fingerprint, ca_file=ca_file,
                               show_fingerprint=False)
        client.client_session = self._contact.session(context)  # openleadr uses a session it finds
        if cert:
            fingerprint = utils.certificate_fingerprint(Path(cert).read_bytes())
            self._log("info", SOURCE, f"this VEN's certificate fingerprint (for the VTN): {fingerprint}")
        client.add_handler("on_event", self._on_event)
        client.add_handler("on_update_event", self._on_event)
        client.add_hook("after_receive_xml", self._contact.received)
        client.add_hook("after_parse_xml", self._parsed)
        client.add_report(callback=self._report_draw, resource_id=self.site.name,
                          measurement="REAL_POWER", unit="W", sampling_rate=TELEMETRY_RATE,
                          report_name=enums.REPORT_NAME.TELEMETRY_USAGE,
                          report_duration=TELEMETRY_RATE.max_period)
        return client

    def _path(self, value: str | None) -> str | None:
        return str(self.site.path_from_file(value)) if value else None

    def _check_trust(self) -> None:
        problem = trust_problem(self.config)
        if problem is None:
            return
        if not self._insecure:
            raise InvalidInputError(f"openadr: the VTN at {self.config.vtn_url} {problem}; {PIN_IT}")
        self._log("warning", SOURCE, f"{INSECURE_FLAG}: the VTN at {self.config.vtn_url} {problem}")

    def _check_key(self) -> None:
        key = self._path(self.config.key)
        if key is None:
            return
        try:
            mode = Path(key).stat().st_mode
        except OSError as error:
            raise InvalidInputError(f"openadr key {key}: {error.strerror}") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise InvalidInputError(f"openadr key {key} can be read by others (mode "
                                    f"{stat.S_IMODE(mode):04o}); chmod 600 it")

    # -- contact -------------------------------------------------------------------------

    def _parsed(self, _message_type: str, payload: dict[str, Any]) -> None:
        """openleadr's after_parse_xml: an answer that passed its checks, which counts if ours pass."""
        if not self._contact.checked(payload):
            return
        if self._contact_lost:
            self._contact_lost = False
            self._log("info", SOURCE, f"the VTN at {self.config.vtn_url} answers again")

    def _check_contact(self, now: float) -> None:
        client, heard_at = self._client, self._contact.heard_at
        if client is None or heard_at is None or self._contact_lost:
            return
        if now - heard_at > LOST_AFTER_POLLS * client.poll_frequency.total_seconds():
            self._contact_lost = True
            with self._lock:
                held = sorted(self._held)
            self._log("warning", SOURCE, f"lost contact with the VTN at {self.config.vtn_url} "
                      f"(nothing heard for {now - heard_at:.0f} s{self._why('; last answer: ')}); "
                      + (f"events {', '.join(held)} run to their end" if held else "no event is held"))

    def _why(self, before: str, after: str = "") -> str:
        """What was wrong with the VTN's last answer, between `before` and `after`; '' when nothing was."""
        problem = self._contact.problem
        return f"{before}{problem}{after}" if problem is not None else ""

    # -- events --------------------------------------------------------------------------

    def _on_event(self, event: dict[str, Any]) -> str:
        """openleadr's on_event and on_update_event: hold the event's requests, answer the opt."""
        descriptor = event["event_descriptor"]
        event_id = str(descriptor["event_id"])
        version = int(descriptor.get("modification_number") or 0)
        status = descriptor.get("event_status")
        with self._lock:
            held = event_id in self._held
        if status == enums.EVENT_STATUS.CANCELLED or (status == enums.EVENT_STATUS.COMPLETED and held):
            self._drop(event_id)
            self._log("info", event_id, f"event {event_id} {status} by the VTN (modification "
                      f"{version})" + ("; its requests are withdrawn" if held else ""))
            return OPT_IN
        try:
            if status == enums.EVENT_STATUS.COMPLETED:  # first heard of after its end
                raise SignalRefused("it is already over (the VTN says completed)")
            requests = requests_for_event(self.site, self.config, event, self._clock())
            reason = self._infeasible(requests)
        except SignalRefused as refused:
            return self._refuse(event_id, f"event {event_id} refused, opted out: {refused}")
        if reason is not None:
            return self._refuse(event_id, f"event {event_id} opted out: {reason}")
        with self._lock:
            modified = event_id in self._held
            self._held[event_id] = requests
        what = "; ".join(request.reason for request in requests) or "level 0 (normal operation)"
        self._log("info", event_id, f"event {event_id} {'modified' if modified else 'received'}, "
                  f"opted in: {what}")
        return OPT_IN

    def _refuse(self, event_id: str, text: str) -> str:
        """Opt out; the refusal goes to the watcher's next poll, which logs it (once)."""
        self._drop(event_id)
        with self._lock:
            self._refusals.append(Refusal(SOURCE, event_id, text))
        return OPT_OUT

    def _infeasible(self, requests: list[Request]) -> str | None:
        asks: list[Ask] = []  # unique, in order; a program's Ask holds lists and cannot be hashed
        for ask in (request.ask for request in requests):
            if ask not in asks:
                asks.append(ask)
        for ask in asks:
            try:
                reason = self._judge(ask)
            except EcohashError as error:
                reason = str(error)
            if reason is not None:
                return f"{ask.text}: {reason}"
        return None

    def _drop(self, event_id: str) -> None:
        with self._lock:
            self._held.pop(event_id, None)

    # -- telemetry -----------------------------------------------------------------------

    async def _report_draw(self) -> list[tuple[datetime, float]]:
        """TELEMETRY_USAGE: the site's measured draw in W; nothing is reported while it is unknown."""
        try:
            draw_w = await asyncio.to_thread(self._telemetry)
        except Exception as error:  # a failed measurement must not stop the VTN's report schedule
            self._log("warning", SOURCE, f"telemetry for the VTN failed: {error}")
            return []
        if draw_w is None:
            return []
        return [(datetime.now(UTC), float(draw_w))]


def requests_for_event(site: Site, config: OpenAdr, event: dict[str, Any], now: float) -> list[Request]:
    """The Requests an event asks for, from `now` on; raises SignalRefused for what cannot be applied."""
    descriptor = event["event_descriptor"]
    event_id = str(descriptor["event_id"])
    version = int(descriptor.get("modification_number") or 0)
    signals = event.get("event_signals") or []
    if isinstance(signals, dict):  # openleadr nests a lone signal list one level deeper
        signals = signals.get("event_signals") or []
    if not signals:
        raise SignalRefused("it carries no signal")
    runs: list[tuple[float, float | None, Ask, str, float | None]] = []
    for signal in signals:
        runs += _signal_runs(site, config, signal, event["active_period"]["dtstart"].timestamp())
    ends = [end for _, end, _, _, _ in runs]
    if runs and all(end is not None and end <= now for end in ends):
        raise SignalRefused(f"it is already over (ended {_utc(max(end for end in ends if end))})")
    requests = []
    for index, (start, end, ask, what, restore_minutes) in enumerate(runs):
        if end is not None and end <= now:
            continue
        until = f"until {_utc(end)}" if end is not None else "until the VTN ends it"
        requests.append(Request(
            source=SOURCE, key=f"{SOURCE}:{event_id}:{index}", correlation_id=event_id, ask=ask,
            start=start, end=end, version=version, restore_minutes=restore_minutes,
            reason=f"OpenADR event {event_id} (modification {version}): {what} -> {ask.text} "
                   f"from {_utc(start)} {until}",
        ))
    return requests


def _signal_runs(site: Site, config: OpenAdr, signal: dict[str, Any],
                 event_start: float) -> list[tuple[float, float | None, Ask, str, float | None]]:
    """(start, end, ask, what, restore_minutes) per run of consecutive intervals with the same ask."""
    given, kind = signal.get("signal_name"), signal.get("signal_type")
    name = SIGNAL_NAMES.get(given) if isinstance(given, str) else None
    if name is None:
        raise SignalRefused(f"signal {given!r} is not one ecohash acts on ({', '.join(SIGNAL_NAMES)})")
    intervals = signal.get("intervals") or []
    if not intervals:
        raise SignalRefused(f"{name} signal has no intervals")
    runs: list[tuple[float, float | None, Ask, str, float | None]] = []
    cursor = event_start
    for number, interval in enumerate(intervals):
        start = interval["dtstart"].timestamp() if interval.get("dtstart") else cursor
        duration = interval.get("duration")
        if duration is None or duration.total_seconds() < 0:
            raise SignalRefused(f"{name} interval {number} has no duration")
        # OpenADR's zero duration means "until cancelled"; only the last interval may say it.
        if duration.total_seconds() == 0 and number != len(intervals) - 1:
            raise SignalRefused(f"{name} interval {number} has no end but is not the last")
        end = start + duration.total_seconds() if duration.total_seconds() else None
        cursor = end if end is not None else start
        payload = interval.get("signal_payload")
        if isinstance(payload, bool) or not isinstance(payload, int | float):
            raise SignalRefused(f"{name} interval {number} has no numeric payload")
        asked = _ask(site, config, name, kind, Decimal(str(payload)), signal.get("measurement"))
        if asked is None:  # SIMPLE level 0: normal operation, nothing asked
            continue
        ask, what, restore_minutes = asked
        if runs and runs[-1][2] == ask and runs[-1][1] == start:
            runs[-1] = (runs[-1][0], end, ask, what, restore_minutes)
        else:
            runs.append((start, end, ask, what, restore_minutes))
    return runs


def _ask(site: Site, config: OpenAdr, name: str, kind: str | None, value: Decimal,
         measurement: dict[str, Any] | None) -> tuple[Ask, str, float | None] | None:
    """What one interval's payload asks: (ask, how the signal said it, restore_minutes), or None."""
    if name == SIMPLE:
        if kind != enums.SIGNAL_TYPE.LEVEL:
            raise SignalRefused(f"SIMPLE signal of type {kind!r}, not level")
        if value not in (0, 1, 2, 3):
            raise SignalRefused(f"SIMPLE level {value} is not 0, 1, 2 or 3")
        level = int(value)
        if level == 0:
            return None
        if level in config.levels:
            try:
                program = find_program(site, config.levels[level])
            except InvalidInputError as error:
                raise SignalRefused(str(error)) from None
            restore = float(program.restore_minutes) if program.restore_minutes is not None else None
            return Ask(program=program), f"SIMPLE level {level}", restore
        return Ask(by_pct=Decimal(DEFAULT_LEVEL_PCT[level])), f"SIMPLE level {level}", None
    if kind not in (enums.SIGNAL_TYPE.SETPOINT, enums.SIGNAL_TYPE.DELTA):
        raise SignalRefused(f"LOAD_DISPATCH signal of type {kind!r}, not setpoint or delta")
    amount_mw = _megawatts(value, measurement)
    grid_mw = Decimal(site.power.grid_mw)
    what = f"LOAD_DISPATCH {kind} {amount_mw} MW"
    if kind == enums.SIGNAL_TYPE.SETPOINT:
        if amount_mw <= 0:
            raise SignalRefused(f"{what} is not a positive draw")
        if amount_mw > grid_mw:
            raise SignalRefused(f"{what} is above the site's grid capacity of {grid_mw} MW")
        return Ask(to_mw=amount_mw), what, None
    # A delta is a change in load: a curtailment is a negative one.
    if amount_mw >= 0:
        raise SignalRefused(f"{what} asks for no less load (a curtailment is a negative delta)")
    if -amount_mw > grid_mw:
        raise SignalRefused(f"{what} is more than the site's grid capacity of {grid_mw} MW")
    return Ask(by_mw=-amount_mw), what, None


def _megawatts(value: Decimal, measurement: dict[str, Any] | None) -> Decimal:
    if not measurement:
        raise SignalRefused("LOAD_DISPATCH signal names no unit (itemBase)")
    unit, scale = measurement.get("unit"), measurement.get("scale") or "none"
    if unit != "W" or scale not in WATTS_PER_UNIT:
        raise SignalRefused(f"LOAD_DISPATCH unit {scale if scale != 'none' else ''}{unit} is not W, kW or MW")
    # Plain digits, never an exponent: the amount is shown to people as it is ("to 10 MW").
    return Decimal(format((value * WATTS_PER_UNIT[scale] / 10**6).normalize(), "f"))


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
