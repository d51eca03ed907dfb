"""Applying a curtailment event to a site's nodes, releasing it, and showing it.

Not built yet: `ecohash curtail` without --dry-run calls these, and they say so. They
will apply caps over SSH to every GPU node in parallel with the preflight's connection
rules, read every enforced limit back, keep the event in the site's state, and restore
planned caps in steps on release (docs/grid.md).
"""

from __future__ import annotations

from datetime import timedelta

from ecohash.budget import Plan
from ecohash.errors import EcohashError
from ecohash.grid.rule import Solution
from ecohash.inventory.model import CurtailmentProgram
from ecohash.inventory.site import Site


class NotBuiltError(EcohashError):
    """A part of ecohash that is designed but not built yet."""


def start_event(plan: Plan, solution: Solution, *, program: CurtailmentProgram | None,
                duration: timedelta | None, as_json: bool) -> None:
    """Apply the solution's caps as an event lasting `duration` (None: until released)."""
    raise NotBuiltError("curtail: applying caps to nodes is not built yet; "
                        "--dry-run shows what the event would set")


def release_event(plan: Plan, *, ramp: timedelta | None, as_json: bool) -> None:
    """Restore the plan's caps over `ramp` (None: the program's restore_minutes, else at once)."""
    raise NotBuiltError("curtail --release: releasing an event is not built yet")


def event_status(site: Site, *, as_json: bool) -> None:
    """Show the site's active event and its measured draw now."""
    raise NotBuiltError("curtail --status: showing an event is not built yet")
