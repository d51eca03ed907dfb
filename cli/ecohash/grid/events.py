"""Curtailment events: what the controller asked of a site's GPUs, kept in its state.

One file per site holds the event now in force, or the last one (<state dir>/grid/<site>/
event.json), rewritten whole and atomically at every step, and each event keeps its own
directory (grid/<site>/events/<id>/): a copy of the event, its samples and its report.
Files are 0600 and directories 0700 like rollout state; they hold caps, read-backs and
times, never a secret.

An event is active from its start until it is released or its end passes; after the end
it reads as expired even if nobody released it, as the nodes, whose overrides carry the
same end, undo it on their own.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, TypeAdapter, ValidationError

from ecohash.atomic import write_atomic
from ecohash.errors import EcohashError, InvalidInputError
from ecohash.locks import file_lock
from ecohash.paths import state_dir
from ecohash.timestamps import utc_time

EVENT_SCHEMA = 1
ACTIVE, RELEASED, EXPIRED = "active", "released", "expired"
# A node's part in an event: its GPUs enforce the cap; it could not be reached and is held
# at its last known cap; it answered but does not enforce the cap; its override is gone.
ENFORCED, HELD, FAILED, RESTORED = "enforced", "held", "failed", "restored"
EVENT_FILE_NAME = "event.json"
SAMPLES_FILE_NAME = "samples.jsonl"


@dataclass
class NodeEvent:
    """One GPU node in an event."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    container: str
    flex: int
    gpus: int
    host_w: int
    planned_w: int
    cap_w: int  # the cap the event asks of each GPU (the held cap for a held node)
    status: str
    reason: str | None = None
    # The last read-back: each GPU's enforced limit, and when the node said so.
    enforced_w: list[float] | None = None
    read_at: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The node as Event.as_dict shows it."""
        return {"container": self.container, "flex": self.flex, "gpus": self.gpus, "host_w": self.host_w,
                "planned_gpu_cap_w": self.planned_w, "gpu_cap_w": self.cap_w, "status": self.status,
                "reason": self.reason, "enforced_w": self.enforced_w,
                "read_at": None if self.read_at is None else utc_time(self.read_at)}

    @property
    def known_cap_w(self) -> int:
        """The highest limit the node's GPUs were last seen to enforce, else its planned cap.

        What a node that cannot be reached is assumed to run at: its last read-back says
        what it did, and without one nothing says it ever left its plan.
        """
        return round(max(self.enforced_w)) if self.enforced_w else self.planned_w


@dataclass
class Event:
    __pydantic_config__ = ConfigDict(extra="forbid")

    id: str
    site: str
    target_label: str
    # Exact Fractions as "n/d" text, and MW for people.
    target_facility_w: str
    target_it_w: str
    target_mw: float
    pue: str
    program: str | None
    restore_minutes: float | None
    start: float
    end: float | None  # None: until released
    status: str
    nodes: dict[str, NodeEvent]
    planned_it_draw_w: int
    it_draw_w: int  # the site's IT draw at the event's caps, every GPU flat out
    replaced: str | None = None
    # Nodes held at their last known cap while the caps were applied, and why: kept when
    # they answer later (a release restores them), so the record says what the cut lacked.
    held: dict[str, str] = field(default_factory=dict)
    released_at: float | None = None
    # Seconds from the command to every reachable GPU verified at its cap, and to the
    # measured draw below the target; None until (or unless) it happened.
    verified_s: float | None = None
    below_target_s: float | None = None
    released_s: float | None = None
    problems: list[str] = field(default_factory=list)
    # Who asked: "manual" (ecohash curtail), or the signal source `ecohash grid watch` followed
    # ("openadr", "schedule", "price") with the id every log line of that signal carries.
    source: str = "manual"
    correlation_id: str | None = None
    reason: str | None = None

    @property
    def start_time(self) -> str:
        return utc_time(self.start)

    @property
    def end_time(self) -> str | None:
        return None if self.end is None else utc_time(self.end)

    def node_until(self) -> int:
        """The end as the node's override takes it: whole seconds, 0 until released."""
        return 0 if self.end is None else int(self.end)

    def state(self, now: float | None = None) -> str:
        """active, released, or expired (an active event whose end has passed)."""
        now = time.time() if now is None else now
        if self.status == ACTIVE and self.end is not None and now >= self.end:
            return EXPIRED
        return self.status

    def below_plan(self) -> dict[str, NodeEvent]:
        return {name: node for name, node in self.nodes.items() if node.cap_w < node.planned_w}

    def summary(self, now: float | None = None) -> str:
        """One line for status and plan."""
        until = f"until {self.end_time}" if self.end is not None else "until released"
        held = f", {len(self.held)} held" if self.held else ""
        return (f"curtailment event {self.id} {self.state(now)}: {self.target_label} "
                f"(target {self.target_mw:g} MW), since {self.start_time} {until}; "
                f"{len(self.below_plan())} of {len(self.nodes)} GPU node(s) below their planned cap{held}")

    def as_dict(self, now: float | None = None) -> dict[str, Any]:
        """The event as `curtail --json` shows it (docs/json.md): moments as ISO text, exact
        fractions as numbers, caps named as plan names them. The event file keeps its own
        form (save_event), which this does not change."""
        data = asdict(self)
        for key in ("start", "end", "released_at", "verified_s", "below_target_s", "released_s"):
            data.pop(key)
        return {
            **data,
            "state": self.state(now),
            "target_facility_w": _watts(self.target_facility_w),
            "target_it_w": _watts(self.target_it_w),
            "pue": float(Fraction(self.pue)),
            "start_at": self.start_time,
            "end_at": self.end_time,
            "released_at": None if self.released_at is None else utc_time(self.released_at),
            "verified_s": self.verified_s,
            "below_target_s": self.below_target_s,
            "released_s": self.released_s,
            "nodes": {name: node.as_dict() for name, node in self.nodes.items()},
        }


_EVENT_FILE = TypeAdapter(Event)


def _watts(fraction_text: str) -> float:
    """An exact "n/d" of the event file as JSON's number of watts, to a tenth as the reports give them."""
    return round(float(Fraction(fraction_text)), 1)


def site_dir(site_name: str) -> Path:
    return state_dir() / "grid" / site_name


def event_file(site_name: str) -> Path:
    return site_dir(site_name) / EVENT_FILE_NAME


def event_dir(site_name: str, event_id: str) -> Path:
    return site_dir(site_name) / "events" / event_id


def new_event_id(now: float) -> str:
    """Sortable by time, unique among events started in the same second; [a-z0-9-] as the
    node's script takes it."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime(now)) + "-" + secrets.token_hex(3)


def make_dirs(path: Path) -> None:
    """Create `path` and its missing parents 0700, as rollout state's directories."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        directory.mkdir(mode=0o700)
        os.chmod(directory, 0o700)  # whatever the umask


def load_event(site_name: str) -> Event | None:
    """The site's current or last event, None when it never had one; a damaged file is named."""
    path = event_file(site_name)
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise EcohashError(f"{path}: unreadable event state ({error.strerror or error})") from error
    try:
        raw = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        where = f":{error.lineno}" if isinstance(error, json.JSONDecodeError) else ""
        raise InvalidInputError(f"{path}{where}: not a curtailment event: {_reason(error)}") from None
    if isinstance(raw, dict) and raw.get("schema") != EVENT_SCHEMA:
        raise InvalidInputError(f"{path}: curtailment event schema {raw.get('schema')!r}; "
                                f"this ecohash reads schema {EVENT_SCHEMA}")
    if isinstance(raw, dict):
        raw.pop("schema")
    try:
        # Strict, and from JSON, as rollout state: a dataclass field takes a JSON object,
        # never a string for a number.
        event = _EVENT_FILE.validate_json(json.dumps(raw), strict=True)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        more = f" (and {error.error_count() - 1} more problems)" if error.error_count() > 1 else ""
        raise InvalidInputError(f"{path}: not a curtailment event: {where + ': ' if where else ''}"
                                f"{first['msg'][0].lower() + first['msg'][1:]}{more}") from None
    if event.site != site_name:
        raise InvalidInputError(f"{path}: the curtailment event of site {event.site!r}, "
                                f"not of site {site_name!r}")
    return event


def _reason(error: Exception) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"invalid JSON ({error.msg}, column {error.colno})"
    return "not UTF-8 text"


def active_event(site_name: str, now: float | None = None) -> Event | None:
    """The event in force on the site now, if any (not released, not past its end)."""
    event = load_event(site_name)
    return event if event is not None and event.state(now) == ACTIVE else None


def event_in_force(site_name: str) -> Event | None:
    """The event to show beside a site's plan, status or drift: active, or expired but never
    released (the nodes end it on their own); None once released or when there is none."""
    event = load_event(site_name)
    return event if event is not None and event.status == ACTIVE else None


def curtailment_data(event: Event) -> dict[str, Any]:
    """The event in force as `plan --json` and `fleet --json` show it, without its read-backs:
    what it asks of which nodes."""
    return {"event": event.id, "state": event.state(), "target": event.target_label,
            "target_mw": event.target_mw, "start_at": event.start_time, "end_at": event.end_time,
            "gpu_cap_w_by_node": {name: node.cap_w for name, node in sorted(event.below_plan().items())},
            "held": sorted(event.held)}


def save_event(event: Event, current: bool = True) -> None:
    """Write the event into its own directory and, if current, as the site's event."""
    text = json.dumps({"schema": EVENT_SCHEMA, **asdict(event)}, indent=1) + "\n"
    directory = event_dir(event.site, event.id)
    make_dirs(directory)
    write_atomic(directory / EVENT_FILE_NAME, text)
    if current:
        write_atomic(event_file(event.site), text)


@contextmanager
def curtailment_lock(site_name: str, command: str) -> Iterator[None]:
    """One curtail command per site at a time; a provision's lock is another, never waited for."""
    path = state_dir() / "locks" / f"{site_name}.curtail.lock"
    with file_lock(path, f"curtailment of site {site_name}", command):
        yield
