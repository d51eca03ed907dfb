"""A curtailment for real: caps applied to every GPU node at once, verified, held, released.

start_event solves the rule for the target, then sends every GPU node its cap in parallel
(`ecohash-gpu-power curtail --cap W --until EPOCH --event ID`, which leaves an override the
node's boot unit and timer honour until the event's end) and checks each GPU's enforced
limit in the read-back against its cap. A node that cannot be reached is held at its last
known cap (its last read-back in the event state, else its planned cap) and the rule is
solved again with it held, so the others go lower and the site still meets the target;
the nodes whose cap changed get it at once. The event is kept in the site's state before
any node is touched, and after every step. The command succeeds only when every GPU that
answered enforces its cap.

release_event restores planned caps in steps over a ramp, flex 1 first and flex 3 last,
so the site does not spike; event_status reads every node once.

The library raises and returns; what the user sees goes through a Display.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

from ecohash.ansible.inventory import planned_inventory
from ecohash.budget import NodePlan, Plan
from ecohash.errors import EcohashError
from ecohash.grid import events
from ecohash.grid.events import (
    ACTIVE,
    ENFORCED,
    FAILED,
    HELD,
    RELEASED,
    RESTORED,
    Event,
    NodeEvent,
    curtailment_lock,
    event_dir,
    load_event,
    new_event_id,
    save_event,
)
from ecohash.grid.evidence import DEFAULT_SETTLE_S, SAMPLE_INTERVAL_S, Evidence, NodeFacts, Round, Sampler
from ecohash.grid.nodes import READ, TIMEOUT_S, Answer, NodeLink, SshLink, ask_all
from ecohash.grid.report import write_event_report
from ecohash.grid.rule import CurtailmentInfeasibleError, Solution, Target, solve
from ecohash.grid.signals import program_restore_minutes
from ecohash.inventory.model import CurtailmentProgram
from ecohash.inventory.site import Site
from ecohash.ssh.client import host_key_known
from ecohash.ssh.config import Target as SshTarget
from ecohash.timestamps import utc_time

# How often the command looks whether the measured draw is below the target yet.
POLL_S = 0.05


class Display(Protocol):
    """Where an event's progress goes: the CLI's console, or nothing in tests."""

    def say(self, text: str) -> None: ...


class Quiet:
    def say(self, text: str) -> None:
        pass


@dataclass(frozen=True)
class CurtailRequest:
    site: Site
    plan: Plan
    target: Target
    program: CurtailmentProgram | None = None
    duration: timedelta | None = None  # --for; else the program's max_hours; else until released
    settle_s: float = DEFAULT_SETTLE_S
    interval_s: float = SAMPLE_INTERVAL_S
    timeout_s: float = TIMEOUT_S
    source: str = "manual"
    correlation_id: str | None = None
    reason: str | None = None
    restore_minutes: float | None = None  # overrides the program's, for a signal that sets its own


@dataclass
class EventOutcome:
    """What a curtail, release or status command did; `ok` decides its exit status."""

    event: Event
    ok: bool
    replaced: Event | None = None
    report: Path | None = None
    lines: list[str] = field(default_factory=list)


def gpu_nodes(plan: Plan) -> dict[str, NodePlan]:
    """The nodes a curtailment caps: those with GPUs and a planned cap."""
    return {n.node.name: n for n in plan.nodes if n.gpu_cap_w is not None and n.node.gpus}


def ssh_link(site: Site, names: Sequence[str], timeout_s: float = TIMEOUT_S) -> SshLink:
    """SSH to the named nodes the way Ansible reaches them (the site's inventory variables)."""
    inventory = planned_inventory(site).inventory
    return SshLink({name: SshTarget.of_host(name, inventory.host_vars(name), site.ssh_config_file)
                    for name in names}, timeout_s)


def start_event(request: CurtailRequest, display: Display | None = None,
                link: NodeLink | None = None) -> EventOutcome:
    """Curtail the site to the request's target; see the module's docstring."""
    display = display or Quiet()
    site, plan, target = request.site, request.plan, request.target
    nodes = gpu_nodes(plan)
    with curtailment_lock(site.name, "curtail"):
        started, clock = time.time(), time.monotonic()
        solution = solve(plan, target)  # an unreachable target stops here, before any node is touched
        previous = load_event(site.name)
        event = _new_event(request, solution, started)
        known = _known_caps(previous, nodes)
        replaced = None
        if previous is not None and previous.state(started) == ACTIVE:
            replaced = previous
            event.replaced = previous.id
            display.say(f"event {event.id} replaces event {previous.id} ({previous.target_label}): "
                        f"new target {target.label}")
        save_event(event)  # on record before any node is touched: a killed command leaves it named
        if replaced is not None:
            _close_replaced(replaced, event, started)
        owned = link is None
        link = link or ssh_link(site, list(nodes), request.timeout_s)
        evidence = _evidence(link, plan, event, "curtail")
        try:
            with Sampler(evidence, request.interval_s) as sampler:
                _apply(event, plan, target, solution, link, evidence, known, display)
                verified_at = time.time()
                if not _failures(event):
                    event.verified_s = round(time.monotonic() - clock, 3)
                    display.say(f"every reachable GPU enforces its cap, {event.verified_s:.2f} s "
                                "after the command")
                save_event(event)
                evidence.set_cap({name: node.cap_w for name, node in event.nodes.items()})
                sampler.wake()
                # The settle limit runs from here: a node that never answers has already cost
                # the caps their timeout, and the draw is worth watching only from now on.
                below = _wait_below(evidence, target.it_w, verified_at, time.monotonic() + request.settle_s)
        finally:
            if owned:
                link.close()
        if below is not None:
            event.below_target_s = round(below.time - started, 3)
        save_event(event)
        outcome = EventOutcome(event, ok=not _failures(event) and not event.problems, replaced=replaced)
        outcome.lines = _curtail_lines(event, below, request.settle_s)
        outcome.report = _write_report(site, plan, event)
        return outcome


def _new_event(request: CurtailRequest, solution: Solution, started: float) -> Event:
    plan, target, program = request.plan, request.target, request.program
    if request.duration is not None:
        end: float | None = started + request.duration.total_seconds()
    elif program is not None and program.max_hours is not None:
        end = started + float(Fraction(str(program.max_hours)) * 3600)
    else:
        end = None
    flex = {container.name: container.flex for container in plan.site.containers}
    nodes = {
        name: NodeEvent(container=n.node.container, flex=flex[n.node.container], gpus=n.node.gpus,
                        host_w=n.node.host_w, planned_w=solution.planned_w[name], cap_w=solution.caps_w[name],
                        status="pending")
        for name, n in gpu_nodes(plan).items()
    }
    pue = Fraction(plan.site.power.pue)
    return Event(
        id=new_event_id(started), site=plan.site.name, target_label=target.label,
        target_facility_w=_fraction_text(target.facility_w), target_it_w=_fraction_text(target.it_w),
        target_mw=float(target.facility_w / 10**6), pue=_fraction_text(pue),
        program=program.name if program else None,
        restore_minutes=_restore_minutes(request),
        start=started, end=end, status=ACTIVE, nodes=nodes,
        planned_it_draw_w=solution.planned_it_draw_w, it_draw_w=solution.it_draw_w,
        source=request.source, correlation_id=request.correlation_id, reason=request.reason,
    )


def _restore_minutes(request: CurtailRequest) -> float | None:
    if request.restore_minutes is not None:
        return request.restore_minutes
    return program_restore_minutes(request.program)


def _fraction_text(value: Fraction) -> str:
    return str(Fraction(value))


def _known_caps(previous: Event | None, nodes: Mapping[str, NodePlan]) -> dict[str, int]:
    """Each node's last known cap: its last read-back in the previous event, else its plan."""
    known = {name: n.gpu_cap_w for name, n in nodes.items() if n.gpu_cap_w is not None}
    if previous is not None:
        for name, recorded in previous.nodes.items():
            if name in known and recorded.enforced_w:
                known[name] = recorded.known_cap_w
    return known


def _close_replaced(previous: Event, event: Event, now: float) -> None:
    """The replaced event's own record says so; the site's current file is the new event."""
    previous.status = RELEASED
    previous.released_at = now
    previous.problems.append(f"replaced by event {event.id} ({event.target_label})")
    save_event(previous, current=False)


def _evidence(link: NodeLink, plan: Plan, event: Event, phase: str) -> Evidence:
    facts = {name: NodeFacts(node.container, node.gpus, node.host_w, node.planned_w)
             for name, node in event.nodes.items()}
    other_host_w = sum(n.node.host_w for n in plan.nodes if n.node.name not in event.nodes)
    directory = event_dir(event.site, event.id)
    events.make_dirs(directory)
    return Evidence(link, directory / events.SAMPLES_FILE_NAME, facts, other_host_w, phase)


def _curtail_arguments(event: Event, cap_w: int) -> list[str]:
    return ["curtail", "--cap", str(int(cap_w)), "--until", str(event.node_until()), "--event", event.id]


def _apply(event: Event, plan: Plan, target: Target, solution: Solution, link: NodeLink,
           evidence: Evidence, known: Mapping[str, int], display: Display) -> None:
    """Send the caps, read them back, and hold and re-solve around nodes that fail."""
    held_w: dict[str, int] = {}
    pending = list(event.nodes)
    while pending:
        commands = {name: _curtail_arguments(event, event.nodes[name].cap_w) for name in pending}
        answers = ask_all(link, commands)
        evidence.record(answers, phase="curtail")
        newly_held: dict[str, int] = {}
        for name, answer in answers.items():
            node = event.nodes[name]
            _judge(node, answer, node.cap_w)
            if node.status in (HELD, FAILED):
                # What the node enforces as far as anyone knows: a failed node's own read-back
                # says it; an unreachable one is taken at its last known cap.
                seen = answer.read_back.enforced_w if answer.read_back else []
                newly_held[name] = round(max(seen)) if seen else known[name]
                display.say(f"{name}: {answer.problem}; held at {newly_held[name]} W per GPU")
                event.held[name] = f"{answer.problem}; held at {newly_held[name]} W per GPU"
        if not newly_held:
            return
        held_w.update(newly_held)
        for name, cap in newly_held.items():
            event.nodes[name].cap_w = cap
        try:
            solution = solve(plan, target, held_w)
        except CurtailmentInfeasibleError as error:
            event.problems.append(f"with {_names(held_w)} held at their last known caps: {error}")
            display.say(event.problems[-1])
            return
        event.it_draw_w = solution.it_draw_w
        pending = [name for name, node in event.nodes.items()
                   if name not in held_w and solution.caps_w[name] != node.cap_w]
        for name in pending:
            event.nodes[name].cap_w = solution.caps_w[name]
        if pending:
            display.say(f"re-solved with {_names(held_w)} held: {len(pending)} node(s) lowered further")
        save_event(event)


def _judge(node: NodeEvent, answer: Answer, cap_w: int) -> None:
    """The node's status from its answer: enforced, held (unreachable), or failed."""
    read_back = answer.read_back
    if read_back is not None:
        node.enforced_w = read_back.enforced_w
        node.read_at = round(read_back.read_at, 3)
    if answer.unreachable:
        node.status, node.reason = HELD, answer.unreachable
        return
    if answer.failed or read_back is None:
        node.status, node.reason = FAILED, answer.failed or "no read-back"
        return
    wrong = read_back.not_enforcing(cap_w)
    if len(read_back.gpus) != node.gpus:
        wrong.insert(0, f"{len(read_back.gpus)} GPUs answered, the site has {node.gpus}")
    if wrong:
        node.status, node.reason = FAILED, f"not at {cap_w} W: " + ", ".join(wrong)
        return
    node.status, node.reason = ENFORCED, None


def _failures(event: Event) -> dict[str, NodeEvent]:
    return {name: node for name, node in event.nodes.items() if node.status == FAILED}


def _wait_below(evidence: Evidence, it_target_w: Fraction, after: float, deadline: float) -> Round | None:
    """The first round begun after `after` with its measured draw within the target; None by the deadline."""
    seen = 0
    while True:
        rounds = evidence.rounds
        for taken in rounds[seen:]:
            # Only a round asked for after the caps were verified: read-backs taken while they
            # were being applied are samples, but not the proof.
            if taken.started >= after and taken.it_draw_w <= it_target_w:
                return taken
        seen = len(rounds)
        if time.monotonic() >= deadline:
            return None
        time.sleep(POLL_S)


def _names(nodes: Mapping[str, Any]) -> str:
    names = sorted(nodes)
    shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    return shown


def _curtail_lines(event: Event, below: Round | None, settle_s: float) -> list[str]:
    lines = [event.summary()]
    for name, node in sorted(event.nodes.items()):
        if node.status == HELD:
            lines.append(f"{name}: held at {node.cap_w} W per GPU: {node.reason}")
        elif node.status == FAILED:
            lines.append(f"{name}: FAILED: {node.reason}")
    lines.extend(event.problems)
    if event.verified_s is not None:
        lines.append(f"caps verified on every reachable GPU {event.verified_s:.2f} s after the command")
    if below is not None:
        lines.append(f"measured IT draw {below.it_draw_w / 1000:.1f} kW within the IT target "
                     f"{float(Fraction(event.target_it_w)) / 1000:.1f} kW, "
                     f"{event.below_target_s:.2f} s after the command")
    else:
        lines.append(f"measured draw not below the target within the settle limit ({settle_s:g} s)")
    return lines


def _write_report(site: Site, plan: Plan, event: Event) -> Path:
    return write_event_report(plan, event)


# --- Release ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReleaseStep:
    at_s: float
    arguments: dict[str, list[str]]  # node -> the script's arguments
    caps_w: dict[str, int]  # node -> the cap it should enforce after the step


def release_steps(event: Event, ramp_s: float) -> list[ReleaseStep]:
    """Planned caps back in steps, flex 1 first and flex 3 last; the first step at once,
    the last at the end of the ramp, when every override is removed.

    With k tiers below plan: one step per tier (k >= 2), spread evenly over the ramp; one
    tier gets two steps, halfway between its cap and its plan, then the plan. Without a
    ramp, or nothing below plan, one step: every node released at once.
    """
    below = {name: node for name, node in event.nodes.items() if node.cap_w < node.planned_w}
    final = ReleaseStep(ramp_s if below else 0.0, {name: ["release"] for name in event.nodes},
                        {name: node.planned_w for name, node in event.nodes.items()})
    if ramp_s <= 0 or not below:
        return [ReleaseStep(0.0, final.arguments, final.caps_w)]
    tiers = sorted({node.flex for node in below.values()})
    if len(tiers) == 1:
        halfway = {name: (node.cap_w + node.planned_w) // 2 for name, node in below.items()}
        first = ReleaseStep(0.0, {name: ["release", "--cap", str(cap)] for name, cap in halfway.items()},
                            halfway)
        return [first, final]
    steps = []
    spacing = ramp_s / (len(tiers) - 1)
    for index, tier in enumerate(tiers[:-1]):
        members = {name: node for name, node in below.items() if node.flex == tier}
        arguments = {name: ["release", "--cap", str(node.planned_w)] for name, node in members.items()}
        steps.append(ReleaseStep(index * spacing, arguments,
                                 {name: node.planned_w for name, node in members.items()}))
    steps.append(final)
    return steps


def release_event(site: Site, plan: Plan, ramp: timedelta | None = None, display: Display | None = None,
                  link: NodeLink | None = None, interval_s: float = SAMPLE_INTERVAL_S,
                  timeout_s: float = TIMEOUT_S) -> EventOutcome | None:
    """Restore the event's planned caps over the ramp (default: the program's restore_minutes,
    else at once). None when the site has no event to release."""
    display = display or Quiet()
    with curtailment_lock(site.name, "curtail release"):
        event = load_event(site.name)
        if event is None or event.status == RELEASED:
            return None
        ramp_s = (ramp.total_seconds() if ramp is not None
                  else (event.restore_minutes or 0) * 60)
        clock = time.monotonic()
        steps = release_steps(event, ramp_s)
        owned = link is None
        link = link or ssh_link(site, list(event.nodes), timeout_s)
        evidence = _evidence(link, plan, event, "release")
        evidence.set_cap({name: node.cap_w for name, node in event.nodes.items()})
        unanswered: dict[str, str] = {}
        try:
            with Sampler(evidence, interval_s):
                for number, step in enumerate(steps, 1):
                    delay = clock + step.at_s - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    answers = ask_all(link, step.arguments)
                    evidence.record(answers, phase="release")
                    evidence.set_cap(step.caps_w)
                    for name, answer in answers.items():
                        node = event.nodes[name]
                        _judge(node, answer, step.caps_w[name])
                        if node.status == ENFORCED:
                            # cap_w stays the event's: the report shows what the event asked, the
                            # read-back (enforced_w) what the node runs at now.
                            unanswered.pop(name, None)
                            if step.arguments[name] == ["release"]:
                                node.status = RESTORED
                        else:
                            unanswered[name] = node.reason or "no answer"
                    display.say(f"release step {number}/{len(steps)} at {step.at_s:.0f} s: "
                                f"{len(answers)} node(s), " + _step_caps(step))
                    save_event(event)
                evidence.sample()
        finally:
            if owned:
                link.close()
        if not unanswered:
            event.status = RELEASED
            event.released_at = time.time()
            event.released_s = round(time.monotonic() - clock, 3)
        save_event(event)
        outcome = EventOutcome(event, ok=not unanswered)
        if unanswered:
            outcome.lines = [f"{name}: not released: {reason}" for name, reason in sorted(unanswered.items())]
            outcome.lines.append(f"event {event.id} stays active until these nodes answer: run "
                                 f"`ecohash curtail release {site.name}` again (their overrides end on "
                                 "their own at the event's end"
                                 + (")" if event.end is not None else "; this event has none)"))
        else:
            outcome.lines = [f"event {event.id} released: planned caps on every GPU node, "
                             f"{event.released_s:.1f} s over a {ramp_s:g} s ramp in {len(steps)} step(s)"]
        outcome.report = _write_report(site, plan, event)
        return outcome


def _step_caps(step: ReleaseStep) -> str:
    caps = sorted(set(step.caps_w.values()))
    return "caps " + ", ".join(f"{cap} W" for cap in caps)


# --- Status -----------------------------------------------------------------------------------


def event_status(site: Site, plan: Plan, link: NodeLink | None = None,
                 timeout_s: float = TIMEOUT_S) -> dict[str, Any]:
    """The site's event (if any) and its measured draw now, from one parallel read."""
    event = load_event(site.name)
    nodes = gpu_nodes(plan)
    owned = link is None
    link = link or ssh_link(site, list(nodes), timeout_s)
    try:
        if event is not None:
            evidence = _evidence(link, plan, event, "status")
            evidence.set_cap({name: node.cap_w for name, node in event.nodes.items()})
        else:
            evidence = None
        answers = ask_all(link, dict.fromkeys(nodes, READ))
    finally:
        if owned:
            link.close()
    measured = _measured(plan, answers)
    if evidence is not None:
        evidence.record(answers)
    now = time.time()
    data: dict[str, Any] = {
        "site": site.name,
        "event": event.as_dict(now) if event is not None else None,
        "state": event.state(now) if event is not None else None,
        "measured": measured,
    }
    if event is not None:
        target_it = Fraction(event.target_it_w)
        data["measured"]["it_target_w"] = float(target_it)
        data["measured"]["below_target"] = measured["it_draw_w"] <= target_it
    for entry in measured["nodes"]:
        recorded = event.nodes.get(entry["name"]) if event is not None else None
        entry["event_gpu_cap_w"] = recorded.cap_w if recorded else None
        entry["event_status"] = recorded.status if recorded else None
    return data


def _measured(plan: Plan, answers: Mapping[str, Answer]) -> dict[str, Any]:
    """The site's measured IT draw: the GPUs' draw read now, plus every node's host_w."""
    pue = Fraction(plan.site.power.pue)
    containers: dict[str, float] = {}
    nodes = []
    unanswered = []
    for node_plan in plan.nodes:
        node = node_plan.node
        answer = answers.get(node.name)
        gpu_draw = answer.read_back.draw_w if answer is not None and answer.read_back else None
        if answer is not None and gpu_draw is None:
            unanswered.append(node.name)
            gpu_draw = float(node.gpus * (node_plan.gpu_cap_w or 0))
        containers[node.container] = containers.get(node.container, 0.0) + node.host_w + (gpu_draw or 0.0)
        if answer is None:
            continue
        read_back = answer.read_back
        override = read_back.override if read_back else None
        nodes.append({
            "name": node.name, "container": node.container, "planned_gpu_cap_w": node_plan.gpu_cap_w,
            "enforced_w": read_back.enforced_w if read_back else None,
            "draw_w": read_back.draw_w if read_back else None,
            "override": dict(override) if override else None,
            "problem": answer.problem,
        })
    it_draw = sum(containers.values())
    return {"measured_at": utc_time(), "it_draw_w": round(it_draw, 1),
            "facility_draw_w": round(float(it_draw * pue), 1),
            "containers": {name: round(w, 1) for name, w in containers.items()},
            "unanswered": unanswered, "nodes": nodes}


def read_draws(site: Site, plan: Plan, link: NodeLink | None = None,
               timeout_s: float = 5.0) -> tuple[dict[str, list[float]], dict[str, str]]:
    """Each GPU node's measured draw per GPU now, and why some could not be read (the dry run).

    Only nodes whose host key is known are contacted: the others would be refused anyway,
    and a site that is not reachable from here (a laptop's checkout) answers at once.
    """
    nodes = gpu_nodes(plan)
    draws: dict[str, list[float]] = {}
    problems: dict[str, str] = {}
    owned = link is None
    if link is None:
        try:
            ssh = ssh_link(site, list(nodes), timeout_s)
        except EcohashError as error:
            return {}, dict.fromkeys(nodes, str(error))
        unknown = [name for name, target in ssh.targets.items() if not host_key_known(target)]
        problems.update(dict.fromkeys(unknown, "host key not in known_hosts, not contacted"))
        link = ssh
    try:
        answers = ask_all(link, dict.fromkeys([name for name in nodes if name not in problems], READ))
    finally:
        if owned:
            link.close()
    for name, answer in answers.items():
        read_back = answer.read_back
        values = [gpu.draw_w for gpu in read_back.gpus] if read_back else []
        if answer.problem or not values or any(value is None for value in values):
            problems[name] = answer.problem or "no draw in the read-back"
        else:
            draws[name] = [float(value) for value in values if value is not None]
    return draws, problems
