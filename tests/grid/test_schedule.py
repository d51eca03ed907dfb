"""Scheduled windows under a fake clock: months, weekdays, local times across DST, the peak alert."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from ecohash.grid.documents import DocumentError
from ecohash.grid.schedule import ScheduleSource, next_window_start, window_on
from ecohash.grid.signals import Refusal, correlation_id
from ecohash.inventory import load_site_text
from ecohash.inventory.model import CurtailmentProgram
from ecohash.inventory.site import Site
from tests.grid.test_site_format import with_programs

CHICAGO = ZoneInfo("America/Chicago")
SUMMER_AFTERNOONS = ("windows: [{months: [6, 7, 8, 9], weekdays: [mon, tue, wed, thu, fri], "
                     "start: '15:00', end: '17:30', timezone: America/Chicago}]")


def at(moment: str, zone: ZoneInfo = CHICAGO) -> float:
    """A fake clock's now: a local wall-clock time in `zone`, as epoch seconds."""
    return datetime.fromisoformat(moment).replace(tzinfo=zone).timestamp()


def utc(moment: str) -> float:
    return at(moment, ZoneInfo("UTC"))


def program(keys: str = SUMMER_AFTERNOONS, alert: bool = False) -> tuple[Site, CurtailmentProgram]:
    more = ", alert: {url: 'https://ercot.example/4cp'}" if alert else ""
    site = load_site_text(with_programs(f"{{name: 4cp, by_pct: 25, restore_minutes: 15, {keys}{more}}}"),
                          "t.yaml")
    return site, site.curtailment_programs[0]


class FakeAlert:
    """What the alert URL answers now: a document, or a DocumentError; counts the reads."""

    def __init__(self, answer: object):
        self.answer, self.reads = answer, 0

    def __call__(self, site: object, source: object) -> object:
        self.reads += 1
        if isinstance(self.answer, DocumentError):
            raise self.answer
        return self.answer


def with_alert(answer: object, keys: str = SUMMER_AFTERNOONS) -> tuple[ScheduleSource, FakeAlert]:
    site, cp = program(keys, alert=True)
    feed = FakeAlert(answer)
    return ScheduleSource(site, cp, read=feed), feed


def keys(source: ScheduleSource, now: float) -> list[str]:
    return [request.key for request in source.poll(now)[0]]


def test_a_window_asks_for_its_program_until_its_local_end():
    site, cp = program()
    requests, refusals = ScheduleSource(site, cp).poll(at("2026-07-15 16:10"))
    assert refusals == []
    (request,) = requests
    assert request.source == "schedule" and request.key == "schedule:4cp:2026-07-15:15:00"
    assert request.ask.program is cp and request.ask.text == "program 4cp"
    assert (request.start, request.end) == (at("2026-07-15 15:00"), at("2026-07-15 17:30"))
    assert request.end == utc("2026-07-15 22:30")  # CDT is UTC-5
    assert request.ramp_minutes == 15.0
    assert request.correlation_id == correlation_id("schedule", "4cp", "2026-07-15", "15:00")
    assert request.reason == "program 4cp window 15:00-17:30 America/Chicago on 2026-07-15"
    assert request.in_force(at("2026-07-15 16:10"))


@pytest.mark.parametrize(("moment", "open_"), [
    ("2026-07-15 14:59:59", False),
    ("2026-07-15 15:00", True),
    ("2026-07-15 17:29:59", True),
    ("2026-07-15 17:30", False),  # the end is not in the window
    ("2026-05-29 16:00", False),  # Friday, May
    ("2026-06-01 16:00", True),  # Monday, June
    ("2026-09-30 16:00", True),  # Wednesday, September
    ("2026-10-01 16:00", False),  # Thursday, October
    ("2026-07-17 16:00", True),  # Friday
    ("2026-07-18 16:00", False),  # Saturday
    ("2026-07-19 16:00", False),  # Sunday
    ("2026-07-20 16:00", True),  # Monday
])
def test_months_weekdays_and_times_are_local(moment, open_):
    site, cp = program()
    assert keys(ScheduleSource(site, cp), at(moment)) == ([f"schedule:4cp:{moment[:10]}:15:00"] if open_ else [])


def test_the_window_follows_the_wall_clock_across_daylight_saving():
    site, cp = program("windows: [{start: '15:00', end: '17:30', timezone: America/Chicago}]")
    source = ScheduleSource(site, cp)
    # 2026-03-08: clocks go forward; the afternoon window opens an hour earlier in UTC.
    assert window_on(cp.windows[0], date(2026, 3, 7)) == (utc("2026-03-07 21:00"), utc("2026-03-07 23:30"))
    assert window_on(cp.windows[0], date(2026, 3, 8)) == (utc("2026-03-08 20:00"), utc("2026-03-08 22:30"))
    assert keys(source, utc("2026-03-07 20:30")) == []
    assert keys(source, utc("2026-03-08 20:30")) == ["schedule:4cp:2026-03-08:15:00"]
    # A window across the change is as long as the wall clock says that day: 2 h in spring, 4 h in autumn.
    night = program("windows: [{start: '01:00', end: '04:00', timezone: America/Chicago}]")[1].windows[0]
    assert window_on(night, date(2026, 3, 8)) == (utc("2026-03-08 07:00"), utc("2026-03-08 09:00"))
    assert window_on(night, date(2026, 11, 1)) == (utc("2026-11-01 06:00"), utc("2026-11-01 10:00"))


def test_the_next_window_start_skips_weekends_and_the_off_season():
    windows = program()[1].windows
    assert next_window_start(windows, at("2026-07-17 18:00")) == at("2026-07-20 15:00")
    assert next_window_start(windows, at("2026-07-15 16:00")) == at("2026-07-16 15:00")
    assert next_window_start(windows, at("2026-07-15 14:00")) == at("2026-07-15 15:00")
    assert next_window_start(windows, at("2026-09-30 18:00")) == at("2027-06-01 15:00")
    assert next_window_start([], at("2026-07-15 14:00")) is None


def test_an_alert_that_says_a_peak_is_likely_today_opens_the_window():
    source, feed = with_alert({"date": "2026-07-15", "peak_likely": True})
    assert source.poll(at("2026-07-15 14:00")) == ([], []) and feed.reads == 0  # read only in a window
    (request,), refusals = source.poll(at("2026-07-15 15:01"))
    assert refusals == [] and feed.reads == 1
    assert request.reason == ("program 4cp window 15:00-17:30 America/Chicago on 2026-07-15, "
                              "alert says a peak is likely")
    feed.answer = {"date": "2026-07-15", "peak_likely": False}  # the forecast changed: the wish goes
    assert source.poll(at("2026-07-15 15:30")) == ([], [])


def test_an_alert_for_another_day_is_no_alert_and_is_said_once():
    source, _ = with_alert({"date": "2026-07-14", "peak_likely": True})
    cid = correlation_id("schedule", "4cp", "2026-07-15", "15:00")
    stale = Refusal("schedule", cid, "program 4cp: the alert is for 2026-07-14, not 2026-07-15: "
                    "window 15:00-17:30 America/Chicago on 2026-07-15 not curtailed")
    assert source.poll(at("2026-07-15 15:01")) == ([], [stale])
    assert source.poll(at("2026-07-15 15:02")) == ([], [])
    # The alert's date is the window's local date: 02:00 UTC on the 16th is still the 15th in Chicago.
    evening, _ = with_alert({"date": "2026-07-15", "peak_likely": True},
                            "windows: [{start: '20:00', end: '23:00', timezone: America/Chicago}]")
    assert keys(evening, utc("2026-07-16 02:00")) == ["schedule:4cp:2026-07-15:20:00"]


@pytest.mark.parametrize(("answer", "failure"), [
    (DocumentError("https://ercot.example/4cp: HTTP 404 Not Found"), "https://ercot.example/4cp: HTTP 404 Not Found"),
    ({"date": "2026-07-15", "peak_likely": "yes"},
     "https://ercot.example/4cp: not an alert: peak_likely must be true or false"),
    ({"date": "15/07/2026", "peak_likely": True}, "https://ercot.example/4cp: not an alert: date must be a date YYYY-MM-DD"),
    ({"peak_likely": True}, "https://ercot.example/4cp: not an alert: date must be a date YYYY-MM-DD"),
    (["2026-07-15", True], 'https://ercot.example/4cp: not an alert: expected {"date": "YYYY-MM-DD", '
     '"peak_likely": true|false}'),
])
def test_a_missing_or_malformed_alert_curtails_nothing_and_says_why(answer, failure):
    source, _ = with_alert(answer)
    cid = correlation_id("schedule", "4cp", "2026-07-15", "15:00")
    assert source.poll(at("2026-07-15 15:01")) == ([], [
        Refusal("schedule", cid, f"program 4cp: {failure}; no earlier copy to keep"),
        Refusal("schedule", cid, "program 4cp: the alert is for no day yet, not 2026-07-15: "
                "window 15:00-17:30 America/Chicago on 2026-07-15 not curtailed"),
    ])
    assert source.poll(at("2026-07-15 15:02")) == ([], [])


def test_an_alert_that_cannot_be_read_later_leaves_todays_wish_standing():
    source, feed = with_alert({"date": "2026-07-15", "peak_likely": True})
    before = source.poll(at("2026-07-15 15:01"))[0]
    feed.answer = DocumentError("https://ercot.example/4cp: no answer within 5 s")
    requests, refusals = source.poll(at("2026-07-15 15:11"))
    assert requests == before
    assert [refusal.reason for refusal in refusals] == [
        "program 4cp: https://ercot.example/4cp: no answer within 5 s; keeping the copy read 10 min ago"]
    assert source.poll(at("2026-07-15 15:12")) == (before, [])
    # Tomorrow the kept copy is yesterday's: no alert.
    assert source.poll(at("2026-07-16 15:01"))[0] == []
