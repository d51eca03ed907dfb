"""Scheduled windows as a grid source: 4CP afternoons, curtailed on the days a peak is likely.

A program's window is a local time of day on chosen months and weekdays, in an IANA time
zone. On a local date D the window runs from the first moment the wall clock there reads
`start` to the first moment it reads `end` (zoneinfo puts those instants right across a
daylight-saving change). While a window runs, the source asks for the program until the
window's end; with an alert, only if the alert document says a peak is likely on D.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ecohash.grid.documents import Document, DocumentError, Reader, read_document
from ecohash.grid.signals import Ask, Refusal, Request, correlation_id
from ecohash.inventory.model import WEEKDAYS, CurtailmentProgram, ScheduleWindow
from ecohash.inventory.site import Site

NAME = "schedule"


def window_on(window: ScheduleWindow, day: date) -> tuple[float, float] | None:
    """The window's start and end on a local date (epoch seconds), None if it is not open that day."""
    if day.month not in window.months or WEEKDAYS[day.weekday()] not in window.weekdays:
        return None
    zone = ZoneInfo(window.timezone)
    return (datetime.combine(day, time.fromisoformat(window.start), zone).timestamp(),
            datetime.combine(day, time.fromisoformat(window.end), zone).timestamp())


def local_date(window: ScheduleWindow, now: float) -> date:
    return datetime.fromtimestamp(now, ZoneInfo(window.timezone)).date()


def next_window_start(windows: list[ScheduleWindow], now: float) -> float | None:
    """When the next window opens after `now` (epoch seconds); None without windows.

    Every month and weekday come round within a year, so a year's days are enough.
    """
    starts = []
    for window in windows:
        today = local_date(window, now)
        for offset in range(366 + 7):
            opens = window_on(window, today + timedelta(days=offset))
            if opens is not None and opens[0] > now:
                starts.append(opens[0])
                break
    return min(starts, default=None)


def parse_alert(raw: Any) -> tuple[date, bool]:
    """An alert document: `{"date": "YYYY-MM-DD", "peak_likely": true|false}`."""
    if not isinstance(raw, dict):
        raise DocumentError('not an alert: expected {"date": "YYYY-MM-DD", "peak_likely": true|false}')
    day, likely = raw.get("date"), raw.get("peak_likely")
    if not isinstance(likely, bool):
        raise DocumentError("not an alert: peak_likely must be true or false")
    try:
        if not isinstance(day, str) or len(day) != 10:
            raise ValueError
        return date.fromisoformat(day), likely
    except ValueError:
        raise DocumentError("not an alert: date must be a date YYYY-MM-DD") from None


class ScheduleSource:
    """The windows of one program, and its alert if it has one."""

    name = NAME

    def __init__(self, site: Site, program: CurtailmentProgram, read: Reader = read_document):
        self.program = program
        self.alert = (Document(site, program.alert, parse_alert, read)
                      if program.alert is not None else None)
        self._said: set[str] = set()  # the windows (correlation ids) whose stale alert was said

    def next_start(self, now: float) -> float | None:
        return next_window_start(self.program.windows, now)

    def poll(self, now: float) -> tuple[list[Request], list[Refusal]]:
        open_now = []
        for window in self.program.windows:
            day = local_date(window, now)
            opens = window_on(window, day)
            if opens is not None and opens[0] <= now < opens[1]:
                open_now.append((window, day, opens))
        # A stale alert is said once per window and day, for as long as the window runs.
        self._said &= {self._cid(window, day) for window, day, _ in open_now}
        if not open_now:
            return [], []
        requests: list[Request] = []
        refusals: list[Refusal] = []
        alert, failure = self.alert.get(now) if self.alert is not None else (None, None)
        if failure is not None:
            window, day, _ = open_now[0]
            refusals.append(Refusal(NAME, self._cid(window, day), f"program {self.program.name}: {failure}"))
        for window, day, (start, end) in open_now:
            cid = self._cid(window, day)
            said = f"window {window.start}-{window.end} {window.timezone} on {day.isoformat()}"
            if self.alert is not None:
                if alert is None or alert[0] != day:
                    if cid not in self._said:
                        self._said.add(cid)
                        refusals.append(Refusal(NAME, cid, (
                            f"program {self.program.name}: the alert is for "
                            f"{alert[0].isoformat() if alert else 'no day yet'}, not {day.isoformat()}: "
                            f"{said} not curtailed")))
                    continue
                if not alert[1]:
                    continue
                said += ", alert says a peak is likely"
            requests.append(Request(
                source=NAME, key=f"{NAME}:{self.program.name}:{day.isoformat()}:{window.start}",
                correlation_id=cid, ask=Ask(program=self.program), start=start, end=end,
                reason=f"program {self.program.name} {said}",
            ))
        return requests, refusals

    def _cid(self, window: ScheduleWindow, day: date) -> str:
        return correlation_id(NAME, self.program.name, day.isoformat(), window.start)
