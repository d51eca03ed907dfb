"""The site format's grid-signal keys: program windows, alerts, price triggers, OpenADR."""

from decimal import Decimal

import pytest

from ecohash.inventory import load_site_text
from tests.conftest import EXAMPLE_SITE
from tests.grid.test_site_format import PROGRAMS, problems, with_programs


def with_openadr(programs: list[str], *lines: str) -> str:
    section = (PROGRAMS + "".join(f"        - {program}\n" for program in programs)
               + "      openadr:\n" + "".join(f"{line}\n" for line in lines))
    return EXAMPLE_SITE.replace("    pue: 1.25\n", section)


def test_windows_alert_and_price_load():
    site = load_site_text(with_programs(
        "{name: 4cp, by_pct: 25, windows: [{months: [6, 7, 8, 9], weekdays: [mon, tue, wed, thu, fri], "
        "start: '15:00', end: '17:30', timezone: America/Chicago}], alert: {url: 'https://ercot.example/4cp'}}",
        "{name: spike, by_pct: 40, price: {file: prices.json, strike: 1250.5, intervals: 3}}",
    ), "t.yaml")
    cp, spike = site.curtailment_programs
    window = cp.windows[0]
    assert (window.months, window.weekdays, window.start, window.end, window.timezone) == (
        [6, 7, 8, 9], ["mon", "tue", "wed", "thu", "fri"], "15:00", "17:30", "America/Chicago")
    assert cp.alert is not None and cp.alert.url == "https://ercot.example/4cp" and cp.alert.file is None
    assert spike.price is not None and (spike.price.file, spike.price.strike, spike.price.intervals) == (
        "prices.json", Decimal("1250.5"), 3)
    every_day = load_site_text(with_programs(
        "{name: w, by_pct: 5, windows: [{start: '00:00', end: '23:59', timezone: UTC}]}"), "t.yaml")
    assert every_day.curtailment_programs[0].windows[0].months == list(range(1, 13))
    assert len(every_day.curtailment_programs[0].windows[0].weekdays) == 7


@pytest.mark.parametrize(("program", "message"), [
    ("{name: a, by_pct: 5, windows: [{start: '17:00', end: '15:00', timezone: UTC}]}",
     "programs[0].windows[0]: end (15:00) must be after start (17:00)"),
    ("{name: a, by_pct: 5, windows: [{start: '3pm', end: '17:00', timezone: UTC}]}",
     "programs[0].windows[0].start: must be a local time HH:MM"),
    ("{name: a, by_pct: 5, windows: [{start: '15:00', end: '17:00', timezone: Mars/Olympus}]}",
     "programs[0].windows[0].timezone: is not a time zone this machine knows"),
    ("{name: a, by_pct: 5, windows: [{start: '15:00', end: '17:00', timezone: ../../etc/passwd}]}",
     "programs[0].windows[0].timezone: must be an IANA time zone"),
    ("{name: a, by_pct: 5, windows: [{months: [13], start: '15:00', end: '17:00', timezone: UTC}]}",
     "programs[0].windows[0].months[0]: must be less than or equal to 12"),
    ("{name: a, by_pct: 5, windows: [{weekdays: [monday], start: '15:00', end: '17:00', timezone: UTC}]}",
     "programs[0].windows[0].weekdays[0]: must be 'mon', 'tue'"),
    ("{name: a, by_pct: 5, alert: {file: peak.json}}", "programs[0]: an alert needs windows to act in"),
    ("{name: a, by_pct: 5, price: {strike: 100}}", "programs[0].price: needs exactly one of file and url"),
    ("{name: a, by_pct: 5, price: {file: p.json, url: 'http://p.example', strike: 100}}",
     "programs[0].price: needs exactly one of file and url"),
    ("{name: a, by_pct: 5, price: {url: 'http://p.example/$(reboot)', strike: 100}}",
     "programs[0].price.url: must be an http(s) URL"),
    ("{name: a, by_pct: 5, price: {file: p.json, strike: 100, intervals: 0}}",
     "programs[0].price.intervals: must be greater than or equal to 1"),
])
def test_signal_values_are_checked_at_their_line(program, message):
    found = problems(with_programs(program))
    assert len(found) == 1 and found[0].startswith(f"t.yaml:13: spec.power.curtailment.{message}"), found


def test_openadr_loads_with_levels_mapped_to_programs():
    site = load_site_text(with_openadr(
        ["{name: ers, by_pct: 25}"],
        "        vtn_url: https://vtn.utility.example/OpenADR2/Simple/2.0b",
        "        ven_name: tx-odessa",
        "        cert: ven.crt",
        "        key: ven.key",
        "        vtn_fingerprint: 'AB:CD:EF:01:23:45:67:89:AB:CD'",
        "        levels: {3: ers}",
    ), "t.yaml")
    openadr = site.power.curtailment.openadr
    assert openadr is not None
    assert (openadr.ven_name, openadr.cert, openadr.key, openadr.levels) == (
        "tx-odessa", "ven.crt", "ven.key", {3: "ers"})
    assert load_site_text(EXAMPLE_SITE, "t.yaml").power.curtailment.openadr is None


@pytest.mark.parametrize(("lines", "message"), [
    (["        vtn_url: http://vtn.example", "        ven_name: a", "        levels: {2: nope}"],
     "t.yaml:17: OpenADR level 2 maps to 'nope', which is not a curtailment program of this site; "
     "valid: ers"),
    (["        vtn_url: http://vtn.example", "        ven_name: a", "        cert: a.crt"],
     "t.yaml:15: spec.power.curtailment.openadr: cert and key go together"),
    (["        vtn_url: http://vtn.example", "        ven_name: a", "        levels: {4: ers}"],
     "t.yaml:17: spec.power.curtailment.openadr.levels[4]: key must be less than or equal to 3"),
    (["        vtn_url: http://vtn.example", "        ven_name: 'a b'"],
     "t.yaml:16: spec.power.curtailment.openadr.ven_name: must be a VEN name"),
])
def test_openadr_values_are_checked_at_their_line(lines, message):
    found = problems(with_openadr(["{name: ers, by_pct: 25}"], *lines))
    assert len(found) == 1 and found[0].startswith(message), found
