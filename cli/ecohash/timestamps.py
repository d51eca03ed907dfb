"""Moments as ecohash writes them in state, reports, locks, logs and bundle metadata.

One format everywhere a person or a program reads a time back: ISO 8601, UTC, to the
second, with a Z. Kept below every layer so that each one writes the same text.
"""

from __future__ import annotations

import time


def utc_time(epoch: float | None = None) -> str:
    """`epoch` (now when None) as ISO 8601 UTC to the second: 2026-01-31T12:00:00Z."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
