"""One text for a moment everywhere ecohash writes one (ecohash.timestamps)."""

from __future__ import annotations

import re

from ecohash.timestamps import utc_time


def test_a_moment_is_iso_8601_utc_to_the_second() -> None:
    assert utc_time(0) == "1970-01-01T00:00:00Z"
    assert utc_time(1_790_000_000.9) == "2026-09-21T14:13:20Z"  # fractions are dropped, not rounded


def test_now_is_the_default() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", utc_time())
