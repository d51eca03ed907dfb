"""A real-time price feed as a grid source: curtail while the price stays above a strike.

The feed is `{"intervals": [{"start": ISO 8601, "end": ISO 8601, "price": number}]}`, per
MWh. The interval that contains now, and the ones just before it with no gap between, make
a run while each is priced above the strike; once the run is `intervals` long the source
asks for the program, with no end: the watcher leases the request and renews it while
the run lasts, and the first interval at or below the strike ends it. A feed with no
interval for now is stale and asks for nothing: a price nobody publishes is no reason to
hold GPUs down.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from ecohash.grid.documents import Document, DocumentError, Reader, read_document
from ecohash.grid.signals import Ask, Refusal, Request, correlation_id
from ecohash.inventory.model import CurtailmentProgram, PriceTrigger
from ecohash.inventory.site import Site
from ecohash.timestamps import utc_time

NAME = "price"
# Beyond any market's price cap (ERCOT's is 5,000/MWh): a figure past this is a broken feed.
PLAUSIBLE_PRICE = Decimal(1_000_000)
_SHAPE = '{"intervals": [{"start": ISO 8601, "end": ISO 8601, "price": number}]}'


@dataclass(frozen=True)
class Interval:
    start: float
    end: float
    price: Decimal


def parse_prices(raw: Any) -> list[Interval]:
    """A price feed's intervals in time order; any malformed interval refuses the whole feed."""
    if not isinstance(raw, dict) or not isinstance(raw.get("intervals"), list):
        raise DocumentError(f"not a price feed: expected {_SHAPE}")
    intervals = sorted((_interval(index, item) for index, item in enumerate(raw["intervals"])),
                       key=lambda interval: interval.start)
    for earlier, later in zip(intervals, intervals[1:], strict=False):
        if later.start < earlier.end:
            raise DocumentError(f"intervals {_span(earlier)} and {_span(later)} overlap")
    return intervals


def _interval(index: int, item: Any) -> Interval:
    where = f"intervals[{index}]"
    if not isinstance(item, dict):
        raise DocumentError(f"{where}: not an object with start, end and price")
    missing = [key for key in ("start", "end", "price") if key not in item]
    if missing:
        raise DocumentError(f"{where}: no {' and '.join(missing)}")
    start, end, price = _moment(where, item, "start"), _moment(where, item, "end"), item["price"]
    if end <= start:
        raise DocumentError(f"{where}: end {utc_time(end)} is not after start {utc_time(start)}")
    if isinstance(price, bool) or not isinstance(price, int | float | Decimal):
        raise DocumentError(f"{where}: price is not a number")
    price = Decimal(str(price)) if isinstance(price, float) else Decimal(price)
    if not price.is_finite() or abs(price) > PLAUSIBLE_PRICE:
        raise DocumentError(f"{where}: price {price} is not plausible (beyond ±{PLAUSIBLE_PRICE:,}/MWh)")
    return Interval(start, end, price)


def _moment(where: str, item: dict[str, Any], key: str) -> float:
    value = item[key]
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None:
        raise DocumentError(f"{where}.{key}: not an ISO 8601 time")
    if moment.tzinfo is None:
        # A local time without its offset is an hour off twice a year.
        raise DocumentError(f"{where}.{key}: {value} has no UTC offset")
    return moment.timestamp()


def _span(interval: Interval) -> str:
    return f"{utc_time(interval.start)}-{utc_time(interval.end)}"


def run_above(intervals: list[Interval], now: float, strike: Decimal) -> list[Interval] | None:
    """The run that ends with the interval containing now: it and the intervals just before it,
    back to a gap or a price at or below the strike (empty when now's price is not above it).
    None when no interval contains now."""
    current = next((index for index, interval in enumerate(intervals)
                    if interval.start <= now < interval.end), None)
    if current is None:
        return None
    if intervals[current].price <= strike:
        return []
    first = current
    while (first > 0 and intervals[first - 1].price > strike
           and intervals[first - 1].end == intervals[first].start):
        first -= 1
    return intervals[first:current + 1]


class PriceSource:
    """One program's price trigger."""

    name = NAME

    def __init__(self, site: Site, program: CurtailmentProgram, read: Reader = read_document):
        if program.price is None:
            raise ValueError(f"program {program.name} has no price trigger")
        self.program = program
        self.trigger: PriceTrigger = program.price
        self.feed = Document(site, program.price, parse_prices, read)
        self.correlation_id = correlation_id(NAME, program.name)
        self._stale: str | None = None  # the staleness last said: said again only when it changes

    def poll(self, now: float) -> tuple[list[Request], list[Refusal]]:
        intervals, failure = self.feed.get(now)
        refusals = [] if failure is None else [self._refusal(failure)]
        if intervals is None:  # never read: the failure says why
            return [], refusals
        run = run_above(intervals, now, self.trigger.strike)
        if run is None:
            stale = self._staleness(intervals, now)
            if stale != self._stale:
                refusals.append(self._refusal(f"{stale}: not acting on price"))
            self._stale = stale
            return [], refusals
        self._stale = None
        if len(run) < self.trigger.intervals:
            return [], refusals
        first, current = run[0], run[-1]
        return [Request(
            source=NAME, key=f"{NAME}:{self.program.name}:{utc_time(first.start)}",
            correlation_id=correlation_id(NAME, self.program.name, utc_time(first.start)),
            ask=Ask(program=self.program), start=run[self.trigger.intervals - 1].start, end=None,
            reason=(f"price {current.price:,}/MWh above strike {self.trigger.strike:,} for {len(run)} "
                    f"interval{'s' if len(run) > 1 else ''} since {utc_time(first.start)}"),
        )], refusals

    def _refusal(self, reason: str) -> Refusal:
        return Refusal(NAME, self.correlation_id, f"program {self.program.name}: {reason}")

    @staticmethod
    def _staleness(intervals: list[Interval], now: float) -> str:
        if not intervals:
            return "the price feed has no intervals"
        if intervals[-1].end <= now:
            return f"the price feed is stale since {utc_time(intervals[-1].end)}"
        later = min(interval.start for interval in intervals if interval.start > now)
        return f"the price feed has no interval before {utc_time(later)}"
