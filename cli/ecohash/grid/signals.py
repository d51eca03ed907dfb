"""What a grid signal asks of the site: the one shape every signal source answers in.

`ecohash grid watch` follows several sources at once (an OpenADR VTN, 4CP-style schedules,
a price feed). Each turns what it heard into Requests: curtail to this target, from then
until then, for this reason, under this correlation id. The watcher (grid/watch.py) picks
the deepest request in force and starts, changes or ends the site's event through the
curtail machinery (grid/actuate.py); sources never touch nodes themselves.

A source that hears something malformed or implausible refuses it with a Refusal: the
watcher logs it with its reason and correlation id and applies nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from ecohash.budget import Plan
from ecohash.grid.rule import Target, program_target, target_for
from ecohash.inventory.model import CurtailmentProgram

# A request without an end from its source (a price spike still running) is asked for this
# long at a time and renewed while the source still asks: a watcher that dies leaves node
# overrides that expire on their own within this, never caps without an end.
LEASE_S = 15 * 60


@dataclass(frozen=True)
class Ask:
    """A target as a signal gives it: one of a program, to_mw, by_mw or by_pct."""

    program: CurtailmentProgram | None = None
    to_mw: Decimal | None = None
    by_mw: Decimal | None = None
    by_pct: Decimal | None = None

    def target(self, plan: Plan) -> Target:
        if self.program is not None:
            return program_target(plan, self.program)
        return target_for(plan, to_mw=self.to_mw, by_mw=self.by_mw, by_pct=self.by_pct)

    @property
    def text(self) -> str:
        if self.program is not None:
            return f"program {self.program.name}"
        if self.to_mw is not None:
            return f"to {self.to_mw} MW"
        if self.by_mw is not None:
            return f"by {self.by_mw} MW"
        return f"by {self.by_pct}%"


@dataclass(frozen=True)
class Request:
    """A source's wish for the site: curtail to `ask` from `start` until `end` (epoch seconds).

    `key` says which wish of which source this is ("openadr:<event id>", "schedule:4cp:
    2026-07-15", "price:spike:<first interval>") and stays the same while the wish does, so
    the watcher changes nothing when a source repeats itself. `correlation_id` goes into every
    log line and the event record (the VTN's event id for OpenADR).
    """

    source: str  # "openadr", "schedule", "price"
    key: str
    correlation_id: str
    ask: Ask
    start: float
    end: float | None
    reason: str
    restore_minutes: float | None = None  # the signal's own ramp; None: its program's
    version: int = 0  # an OpenADR modification number: a higher one with the same key is a change

    def in_force(self, now: float) -> bool:
        return self.start <= now and (self.end is None or now < self.end)

    @property
    def ramp_minutes(self) -> float | None:
        """How long its release ramp lasts: the signal's own, else its program's."""
        return self.restore_minutes if self.restore_minutes is not None else program_restore_minutes(
            self.ask.program)


def program_restore_minutes(program: CurtailmentProgram | None) -> float | None:
    """A program's release ramp in minutes, None when it has none (release at once)."""
    return None if program is None or program.restore_minutes is None else float(program.restore_minutes)


@dataclass(frozen=True)
class Refusal:
    """A signal heard and not applied: malformed, implausible, or already over."""

    source: str
    correlation_id: str
    reason: str


class Source(Protocol):
    """A signal source the watcher polls: what it asks for at `now`, and what it refused."""

    name: str

    def poll(self, now: float) -> tuple[list[Request], list[Refusal]]:
        """Requests in force or upcoming at `now`, and refusals since the last poll.

        May block for I/O (a file, a URL) for at most a few seconds; a source that cannot
        read its document keeps asking for what it last knew until that ends.
        """
        ...


def correlation_id(*parts: str) -> str:
    """A short stable id for a wish that has none from upstream (a schedule's day, a spike)."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:12]
