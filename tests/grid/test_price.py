"""The price source under a fake clock: runs above the strike, drops, gaps, stale and malformed feeds."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from ecohash.grid.documents import DocumentError
from ecohash.grid.price import PriceSource, parse_prices
from ecohash.grid.signals import Refusal, correlation_id
from ecohash.inventory import load_site_text
from ecohash.inventory.model import CurtailmentProgram
from ecohash.inventory.site import Site
from tests.grid.feeds import Answer, FeedServer
from tests.grid.test_site_format import with_programs

CID = correlation_id("price", "spike")


def utc(hh_mm: str) -> float:
    """A fake clock's now on 2026-07-15, UTC."""
    return datetime.fromisoformat(f"2026-07-15T{hh_mm}+00:00").timestamp()


def feed(*prices: float | str, first: str = "15:00", minutes: int = 5) -> dict:
    """Back-to-back intervals from `first`, one per price."""
    start = utc(first)
    return {"intervals": [
        {"start": datetime.fromtimestamp(start + i * minutes * 60, UTC).isoformat(),
         "end": datetime.fromtimestamp(start + (i + 1) * minutes * 60, UTC).isoformat(),
         "price": price}
        for i, price in enumerate(prices)]}


def program(source: str = "url: 'https://prices.example/rt'", tmp_path: Path | None = None
            ) -> tuple[Site, CurtailmentProgram]:
    site = load_site_text(with_programs(
        f"{{name: spike, by_pct: 40, restore_minutes: 5, price: {{{source}, strike: 1000, intervals: 3}}}}"),
        (tmp_path or Path(".")) / "site.yaml")
    return site, site.curtailment_programs[0]


class FakeFeed:
    def __init__(self, answer: object):
        self.answer = answer

    def __call__(self, site: object, source: object) -> object:
        if isinstance(self.answer, DocumentError):
            raise self.answer
        return self.answer


def source_of(answer: object) -> tuple[PriceSource, FakeFeed]:
    site, spike = program()
    fake = FakeFeed(answer)
    return PriceSource(site, spike, read=fake), fake


def test_below_the_strike_asks_for_nothing():
    source, _ = source_of(feed(1100, 1200, 1000, 999.99))
    assert source.poll(utc("15:12")) == ([], [])  # 1000 is the strike, not above it
    assert source.poll(utc("15:17")) == ([], [])


def test_the_program_is_asked_for_once_the_run_is_long_enough():
    source, fake = source_of(feed(900, 1100, 1250))
    assert source.poll(utc("15:12")) == ([], [])  # two intervals above: one short
    fake.answer = feed(900, 1100, 1250, 1250.5)
    (request,), refusals = source.poll(utc("15:16"))
    assert refusals == []
    _, spike = program()
    assert (request.source, request.key, request.ask.program) == ("price", "price:spike:2026-07-15T15:05:00Z", spike)
    assert (request.start, request.end, request.ramp_minutes) == (utc("15:15"), None, 5.0)
    assert request.correlation_id == correlation_id("price", "spike", "2026-07-15T15:05:00Z")
    assert request.reason == "price 1,250.5/MWh above strike 1,000 for 3 intervals since 2026-07-15T15:05:00Z"
    # The same run a minute later, or an interval later, is the same wish.
    assert source.poll(utc("15:17"))[0] == [request]
    fake.answer = feed(900, 1100, 1250, 1250.5, 3000)
    (later,), _ = source.poll(utc("15:21"))
    assert (later.key, later.start, later.end) == (request.key, request.start, None)
    assert later.reason == "price 3,000/MWh above strike 1,000 for 4 intervals since 2026-07-15T15:05:00Z"


def test_a_drop_or_a_gap_ends_the_run():
    source, fake = source_of(feed(1100, 1200, 1300, 950))
    assert source.poll(utc("15:16")) == ([], [])
    fake.answer = feed(1100, 1200, 1300, 950, 1400, 1500)
    assert source.poll(utc("15:26")) == ([], [])  # a new run, two intervals long
    # Three intervals above with a missing interval between them is not three in a row.
    gap = feed(1100, 1200, 1300, 1400)
    gap["intervals"].pop(1)
    fake.answer = gap
    assert source.poll(utc("15:16")) == ([], [])
    assert source.poll(utc("15:06")) == ([], [Refusal("price", CID, "program spike: the price feed has no "
                                                      "interval before 2026-07-15T15:10:00Z: not acting on price")])


def test_a_stale_feed_asks_for_nothing_and_says_so_once():
    source, fake = source_of(feed(1100, 1200, 1300))
    assert len(source.poll(utc("15:14"))[0]) == 1
    stale = Refusal("price", CID, "program spike: the price feed is stale since 2026-07-15T15:15:00Z: "
                    "not acting on price")
    assert source.poll(utc("15:15")) == ([], [stale])
    assert source.poll(utc("15:40")) == ([], [])
    fake.answer = feed(1100, 1200, 1300, 1400, first="15:40")
    assert len(source.poll(utc("15:56"))[0]) == 1
    assert source.poll(utc("16:00"))[1] == [Refusal(
        "price", CID, "program spike: the price feed is stale since 2026-07-15T16:00:00Z: not acting on price")]
    fake.answer = {"intervals": []}
    assert source.poll(utc("16:01"))[1] == [Refusal(
        "price", CID, "program spike: the price feed has no intervals: not acting on price")]


def interval(**changes: object) -> dict:
    good = {"start": "2026-07-15T15:00:00Z", "end": "2026-07-15T15:05:00Z", "price": 1200}
    return {"intervals": [{key: value for key, value in {**good, **changes}.items() if value is not None}]}


@pytest.mark.parametrize(("raw", "message"), [
    ([], 'not a price feed: expected {"intervals": [{"start": ISO 8601, "end": ISO 8601, "price": number}]}'),
    ({"intervals": {}}, 'not a price feed: expected {"intervals": [{"start": ISO 8601, "end": ISO 8601, "price": number}]}'),
    ({"intervals": [1200]}, "intervals[0]: not an object with start, end and price"),
    (interval(price=None), "intervals[0]: no price"),
    (interval(start=None, end=None), "intervals[0]: no start and end"),
    (interval(start="15:00"), "intervals[0].start: not an ISO 8601 time"),
    (interval(end=1752591900), "intervals[0].end: not an ISO 8601 time"),
    (interval(start="2026-07-15T15:00:00"), "intervals[0].start: 2026-07-15T15:00:00 has no UTC offset"),
    (interval(end="2026-07-15T15:00:00Z"), "intervals[0]: end 2026-07-15T15:00:00Z is not after start 2026-07-15T15:00:00Z"),
    (interval(end="2026-07-15T14:55:00Z"), "intervals[0]: end 2026-07-15T14:55:00Z is not after start 2026-07-15T15:00:00Z"),
    (interval(price="1200"), "intervals[0]: price is not a number"),
    (interval(price=True), "intervals[0]: price is not a number"),
    (interval(price=float("nan")), "intervals[0]: price NaN is not plausible (beyond ±1,000,000/MWh)"),
    (interval(price=Decimal("1e400")), "intervals[0]: price 1E+400 is not plausible (beyond ±1,000,000/MWh)"),
    (interval(price=-2_000_000), "intervals[0]: price -2000000 is not plausible (beyond ±1,000,000/MWh)"),
    ({"intervals": [interval()["intervals"][0], interval(start="2026-07-15T15:04:00Z", end="2026-07-15T15:09:00Z")
                    ["intervals"][0]]},
     "intervals 2026-07-15T15:00:00Z-2026-07-15T15:05:00Z and 2026-07-15T15:04:00Z-2026-07-15T15:09:00Z overlap"),
])
def test_a_malformed_feed_is_refused_whole(raw, message):
    with pytest.raises(DocumentError) as raised:
        parse_prices(raw)
    assert str(raised.value) == message
    source, _ = source_of(raw)
    assert source.poll(utc("15:01")) == ([], [Refusal(
        "price", CID, f"program spike: https://prices.example/rt: {message}; no earlier copy to keep")])


def test_negative_prices_and_offsets_are_taken_as_written():
    intervals = parse_prices({"intervals": [
        {"start": "2026-07-15T10:05:00-05:00", "end": "2026-07-15T10:10:00-05:00", "price": -25},
        {"start": "2026-07-15T15:00:00Z", "end": "2026-07-15T15:05:00Z", "price": 1200.25},
    ]})
    assert [(i.start, i.end, i.price) for i in intervals] == [
        (utc("15:00"), utc("15:05"), Decimal("1200.25")), (utc("15:05"), utc("15:10"), Decimal(-25))]


def test_a_malformed_feed_later_keeps_the_last_good_one():
    source, fake = source_of(feed(1100, 1200, 1300, 1400))
    (request,), _ = source.poll(utc("15:11"))
    fake.answer = interval(price="n/a")
    assert source.poll(utc("15:13")) == ([request], [Refusal(
        "price", CID, "program spike: https://prices.example/rt: intervals[0]: price is not a number; "
        "keeping the copy read 2 min ago")])
    assert source.poll(utc("15:14")) == ([request], [])


def test_a_price_spike_from_a_local_http_server(tmp_path):
    with FeedServer({"/rt": Answer(json.dumps(feed(900, 1100, 1200)).encode())}) as server:
        site, spike = program(f"url: '{server.url}/rt'", tmp_path)
        source = PriceSource(site, spike)
        assert source.poll(utc("15:11")) == ([], [])
        server.routes["/rt"] = Answer(json.dumps(feed(900, 1100, 1200, 1300.5)).encode())
        (request,), refusals = source.poll(utc("15:16"))
        assert refusals == [] and request.key == "price:spike:2026-07-15T15:05:00Z"
        assert request.reason == "price 1,300.5/MWh above strike 1,000 for 3 intervals since 2026-07-15T15:05:00Z"
        server.routes["/rt"] = Answer(b"upstream down", status=503)
        assert source.poll(utc("15:17")) == ([request], [Refusal(
            "price", CID, f"program spike: {server.url}/rt: HTTP 503 Service Unavailable; "
            "keeping the copy read 60 s ago")])
        server.routes["/rt"] = Answer(json.dumps(feed(900, 1100, 1200, 1300.5, 980)).encode())
        assert source.poll(utc("15:21")) == ([], [])
