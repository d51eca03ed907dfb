"""`ecohash provision`: a site's nodes brought to its standard in waves, verified, recorded.

The order of a rollout, and why:

1. Validate and plan: an infeasible budget refuses to start, before anything is touched.
2. Fingerprint every node in scope; nodes that already passed at the same fingerprint
   are skipped (unless forced): a re-run does only what is not done.
3. Preflight the rest over SSH in parallel: a node that cannot be reached, answers with
   another host key, cannot escalate or has no Python is set aside up front, with its
   reason, instead of failing a wave.
4. Waves: a canary (the Kubernetes servers and one node per container), then batches.
   Each wave is one ansible-runner run of playbooks/bootstrap.yml on exactly its nodes
   (or --shards such runs over disjoint slices of it, at once, merged into one result),
   then testinfra verification of the nodes that ran the node play to its end. State is
   saved after every wave. A wave that takes failures over --max-fail-pct, or that
   Ansible ended before some of its nodes ran, stops the rollout.
5. The site stack: applied when the pulumi CLI and the cluster are reachable, else
   rendered into the run's directory, and the report says which and why.
6. The report (JSON, text, HTML) in the run's directory.

The library raises and returns; it never prints. What the user sees goes through a
`Display`, which the CLI implements with a live table on a terminal and lines in a log.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ecohash.ansible.inventory import SERVERS_GROUP, Inventory, planned_inventory
from ecohash.ansible.patterns import select_hosts
from ecohash.ansible.remote import Executor
from ecohash.ansible.runner import (
    REPORT_TASK,
    UNANSWERED,
    HostProgress,
    PlaybookRun,
    RunResult,
    new_run_directory,
)
from ecohash.ansible.shards import run_sharded, shard_count
from ecohash.budget import Plan
from ecohash.errors import EcohashError
from ecohash.inventory.site import Site
from ecohash.locks import site_lock
from ecohash.report import plan_data
from ecohash.rollout import preflight
from ecohash.rollout.changes import record_stack
from ecohash.rollout.fingerprint import Fingerprint, Fingerprints
from ecohash.rollout.report import REPORT_SCHEMA, write_report
from ecohash.rollout.state import FAILED, INTERRUPTED, PASSED, UNREACHABLE, RolloutState
from ecohash.rollout.verify import Verification, VerifyTarget, event_caps, verify_nodes
from ecohash.rollout.waves import Wave, WaveNode, plan_waves
from ecohash.ssh.config import Target
from ecohash.stack.render import checked_render, write_render
from ecohash.standard import NodeStandard, standard_file_of
from ecohash.summarise import names_line
from ecohash.timestamps import utc_time

# A run's words for nodes it did not provision (never written to state).
SKIPPED, NOT_RUN = "skipped", "not-run"
INTERRUPTED_MESSAGE = "interrupted: finished waves are recorded; run provision again to resume"


class Display(Protocol):
    """Where a rollout's progress goes: the CLI's console, or nothing in tests."""

    def say(self, text: str) -> None: ...

    def wave(self, title: str) -> AbstractContextManager[Callable[[HostProgress], None]]: ...


@dataclass(frozen=True)
class ProvisionRequest:
    site: Site
    limit: str | None = None
    wave_size: int | str | list[int | str] | None = None  # default: the site's rollout.serial
    max_fail_pct: int | None = None  # default: the site's rollout.max_fail_percentage
    canary_per_container: int = 1
    force: bool = False
    dry_run: bool = False
    here: bool = False  # run Ansible on this machine even when the site names an executor
    # ansible-runner jobs per wave, over disjoint slices of it; default: from the cores
    # (ecohash.ansible.shards.shard_count).
    shards: int | None = None


@dataclass
class NodeOutcome:
    """What this run did with one node; becomes a report row and, if provisioned, state."""

    name: str
    fingerprint: Fingerprint
    status: str = NOT_RUN
    reason: str | None = None
    wave: int | None = None
    duration_s: float | None = None
    verdict: dict[str, Any] | None = None
    verification: Verification | None = None


@dataclass
class Rollout:
    """Everything one provision run knows, shared by its steps."""

    request: ProvisionRequest
    plan: Plan
    standard: NodeStandard
    inventory: Inventory
    state: RolloutState
    outcomes: dict[str, NodeOutcome]
    fingerprints: Fingerprints
    run_id: str = "dry-run"
    directory: Path | None = None
    started: float = field(default_factory=time.time)
    waves: list[dict[str, Any]] = field(default_factory=list)
    outcome: str = "completed"
    message: str | None = None
    stack: dict[str, Any] = field(default_factory=lambda: {
        "action": "not-run", "reason": None, "directory": None, "objects": None})

    @property
    def site(self) -> Site:
        return self.request.site

    @property
    def executor(self) -> Executor | None:
        return None if self.request.here else Executor.of_site(self.site)

    @property
    def serial(self) -> int | str | list[int | str]:
        return self.request.wave_size or self.site.provisioning.rollout.serial

    @property
    def max_fail_pct(self) -> int:
        if self.request.max_fail_pct is not None:
            return self.request.max_fail_pct
        return self.site.provisioning.rollout.max_fail_percentage


def provision(request: ProvisionRequest, display: Display, cancel: threading.Event) -> dict[str, Any]:
    """Run (or, with dry_run, only plan) the rollout; return the report's data."""
    site = request.site
    planned = planned_inventory(site)  # an infeasible site raises here, before anything else
    plan, standard, inventory = planned.plan, planned.standard, planned.inventory
    scope = select_hosts(inventory, request.limit)
    if request.dry_run:
        return _dry_run(request, plan, standard, inventory, scope, display, cancel)
    executor = None if request.here else Executor.of_site(site)
    if executor is not None:
        executor.check_site_keys(site, inventory)  # exit 2 before anything starts
    with site_lock(site.name, "provision"):
        rollout = _start(request, plan, standard, inventory, scope, RolloutState.load(site.name))
        rollout.directory = new_run_directory(site.name, "provision")
        rollout.run_id = rollout.directory.name
        display.say(f"{site.name}: run {rollout.run_id}")
        if rollout.executor is not None:
            display.say(f"{site.name}: waves run on {rollout.executor.describe()}")
        _record_run(rollout, "running")
        try:
            _roll_out(rollout, display, cancel)
        except KeyboardInterrupt:
            rollout.outcome, rollout.message = "interrupted", INTERRUPTED_MESSAGE
            raise
        except BaseException as error:
            # Whatever broke (the stack, a render, ansible-runner itself), the run did not
            # complete, and state and the reports must not say it did; the error goes on to
            # the CLI, which reports it and exits as usual.
            rollout.outcome = "failed"
            rollout.message = (f"failed: {_error_text(error)}; finished waves are recorded; "
                               "run provision again to resume")
            raise
        finally:
            report = _report(rollout)
            write_report(report, rollout.directory)
            _record_run(rollout, rollout.outcome)
        return report


def _start(request: ProvisionRequest, plan: Plan, standard: NodeStandard, inventory: Inventory,
           scope: list[str], state: RolloutState) -> Rollout:
    fingerprints = Fingerprints(inventory)
    outcomes = {}
    for name in scope:
        outcome = NodeOutcome(name, fingerprints.of(name))
        if not request.force and state.is_current(name, outcome.fingerprint.value):
            record = state.nodes[name]
            outcome.status = SKIPPED
            outcome.reason = f"already standard at this fingerprint (passed in {record.run})"
        outcomes[name] = outcome
    # Nodes taken out of the inventory are no longer the site's: their records would
    # otherwise show as pending changes forever. (Draining them is not provision's job.)
    state.forget(set(state.nodes) - set(inventory.hosts))
    return Rollout(request, plan, standard, inventory, state, outcomes, fingerprints)


def _dry_run(request: ProvisionRequest, plan: Plan, standard: NodeStandard, inventory: Inventory,
             scope: list[str], display: Display, cancel: threading.Event) -> dict[str, Any]:
    rollout = _start(request, plan, standard, inventory, scope, RolloutState.load(request.site.name))
    rollout.outcome = "dry-run"
    todo = _preflight(rollout, display, cancel)
    for wave in _waves(rollout, todo):
        for name in wave.nodes:
            rollout.outcomes[name].wave = wave.index
            rollout.outcomes[name].reason = f"would run in {wave.name}"
        rollout.waves.append(_wave_entry(wave, None, [], None, _wave_shards(rollout, wave)))
    rollout.stack["reason"] = "dry run"
    return _report(rollout)


def _roll_out(rollout: Rollout, display: Display, cancel: threading.Event) -> None:
    todo = _preflight(rollout, display, cancel)
    _save_state(rollout)  # preflight failures are results too
    if over_failure_limit(rollout, "preflight"):
        return
    waves = _waves(rollout, todo)
    for wave in waves:
        if cancel.is_set():
            break
        display.say(f"{wave.name} ({wave.index}/{len(waves)}): {len(wave.nodes)} node(s): "
                    + _names(rollout, wave.nodes))
        _run_wave(rollout, wave, display, cancel)
        _save_state(rollout)
        if cancel.is_set() or over_failure_limit(rollout, wave.name) or cut_short(rollout, wave):
            break
    if cancel.is_set():
        rollout.outcome = "interrupted"
        rollout.message = INTERRUPTED_MESSAGE
        return
    if rollout.outcome == "completed":
        _stack(rollout, display)


def _preflight(rollout: Rollout, display: Display, cancel: threading.Event) -> list[str]:
    """Probe the nodes with work to do; record the ones that fail; return the ones that pass."""
    todo = [name for name, outcome in rollout.outcomes.items() if outcome.status == NOT_RUN]
    if not todo:
        return []
    display.say(f"preflight: probing {len(todo)} node(s) over SSH")
    results = preflight.probe_all([_target(rollout, name) for name in todo])
    passed = []
    for name in todo:
        result = results[name]
        if result.ok:
            passed.append(name)
            continue
        outcome = rollout.outcomes[name]
        outcome.status = UNREACHABLE
        outcome.reason = f"preflight: {result.reason}"
        outcome.duration_s = round(result.elapsed_s, 1)
        display.say(f"{name}: left out: {result.reason}")
    if cancel.is_set():
        return []
    return passed


def _target(rollout: Rollout, name: str) -> Target:
    """How Ansible reaches the node: what the preflight probes and verification uses."""
    return Target.of_host(name, rollout.inventory.host_vars(name), rollout.site.ssh_config_file)


def _waves(rollout: Rollout, names: list[str]) -> list[Wave]:
    servers = set(rollout.inventory.groups.get(SERVERS_GROUP, []))
    nodes = [WaveNode(name, _container_of(rollout, name), name in servers) for name in names]
    return plan_waves(nodes, rollout.serial, rollout.request.canary_per_container)


def _wave_shards(rollout: Rollout, wave: Wave) -> int:
    """How many ansible-runner jobs run the wave: one when it holds a Kubernetes server.

    bootstrap.yml brings a wave's servers up, one at a time, before its agents join them
    (they reach the API of the first server, and it labels them): an order that holds only
    inside one job. That server's job is also where the k3s join token is made (the
    k8s_node role's password lookup, on first use): in one job, not raced by other shards,
    and every later wave only reads it. The canary holds the servers (unless --canary 0).
    """
    if set(wave.nodes) & set(rollout.inventory.groups.get(SERVERS_GROUP, [])):
        return 1
    return shard_count(rollout.request.shards, len(wave.nodes))


def _run_wave(rollout: Rollout, wave: Wave, display: Display, cancel: threading.Event) -> None:
    assert rollout.directory is not None
    started = time.monotonic()
    shards = _wave_shards(rollout, wave)
    request = PlaybookRun(
        site_name=rollout.site.name,
        site_file=rollout.site.file,
        playbook="bootstrap.yml",
        hosts=list(wave.nodes),
        # The whole wave at once, and Ansible never stops it: ecohash judges each wave's
        # failures against --max-fail-pct itself, across waves and preflight.
        serial=len(wave.nodes),
        max_fail_percentage=100,
        directory=rollout.directory / f"wave-{wave.index:02d}",
        executor=rollout.executor,
    )
    title = f"{wave.name}: bootstrap" + (f" in {shards} shards" if shards > 1 else "")
    with display.wave(title) as on_update:
        result = run_sharded(request, shards, on_update, cancel)
    converged = _classify(rollout, wave, result, cancel.is_set())
    if converged and not cancel.is_set():
        display.say(f"{wave.name}: verifying {len(converged)} node(s)")
        _verify(rollout, converged)
    failed = [name for name in wave.nodes if rollout.outcomes[name].status in (FAILED, UNREACHABLE)]
    for name in failed:
        display.say(f"{name}: {rollout.outcomes[name].status}: {rollout.outcomes[name].reason}")
    rollout.waves.append(_wave_entry(wave, round(time.monotonic() - started, 1), failed, request.directory,
                                     shards))


def _classify(rollout: Rollout, wave: Wave, result: RunResult, interrupted: bool) -> list[str]:
    """Each wave node's fate from the Ansible run; returns those to verify."""
    failed = set(result.failed_hosts)
    converged = []
    for name in wave.nodes:
        outcome = rollout.outcomes[name]
        outcome.wave = wave.index
        progress = result.hosts.get(name)
        outcome.duration_s = progress.duration_s if progress else None
        outcome.verdict = progress.health if progress else None
        if interrupted and (progress is None or name not in failed):
            # Stopped mid-converge: the node is neither what it was nor standard yet.
            outcome.status, outcome.reason = INTERRUPTED, "interrupted during its wave"
        elif progress is None:
            outcome.reason = f"the wave stopped before this node ran ({result.reason or result.status})"
        elif name in failed or progress.state in (FAILED, UNREACHABLE):
            reason = _failure(progress)
            outcome.status = UNREACHABLE if (progress.state == UNREACHABLE or reason.startswith(UNANSWERED)) \
                else FAILED
            outcome.reason = reason
        elif progress.health is not None and not progress.health.get("passed"):
            outcome.status = FAILED
            outcome.reason = "failed acceptance: " + ", ".join(progress.health.get("failed_checks", []))
        elif not progress.ran_node_play:
            # Events alone prove nothing: a playbook Ansible ended early leaves the hosts it
            # never reached with their reachability play's ok events and no error.
            outcome.reason = f"the playbook ended before this node ran{_why_ended(wave, result)}"
        else:
            converged.append(name)
    return converged


def _why_ended(wave: Wave, result: RunResult) -> str:
    """The failure that ended the playbook as the wave's first failed host tells it, if one
    did; first, a failure of the run itself (its executor died)."""
    if result.reason:
        return f": {result.reason}"
    failed = [name for name in wave.nodes if name in result.hosts and result.hosts[name].failure]
    if not failed:
        return f" (ansible-playbook {result.status}, rc {result.rc})"
    more = f" (and {len(failed) - 1} more failed)" if len(failed) > 1 else ""
    return f": {failed[0]} failed: {_failure(result.hosts[failed[0]])}{more}"


def _failure(progress: HostProgress) -> str:
    return (progress.failure or "failed").removeprefix(REPORT_TASK)


def _verify(rollout: Rollout, names: list[str]) -> None:
    standard = rollout.inventory.all_vars["ecohash_standard"]
    curtailments = event_caps(rollout.site.name)  # a provision during an event keeps the event's caps
    targets = []
    for name in names:
        reach = _target(rollout, name)
        targets.append(VerifyTarget(name, reach.address, reach.port, reach.user, reach.ssh_config,
                                    rollout.inventory.host_vars(name), standard, curtailments.get(name)))
    for name, verification in verify_nodes(targets).items():
        outcome = rollout.outcomes[name]
        outcome.verification = verification
        if verification.passed:
            outcome.status, outcome.reason = PASSED, None
        else:
            outcome.status = UNREACHABLE if verification.error else FAILED
            outcome.reason = verification.reason


def over_failure_limit(rollout: Rollout, after: str) -> bool:
    """Stop when failures exceed the limit, counted two ways.

    Over every node this run set out to provision (preflight failures included), so
    failures cannot pile up unnoticed; and over the nodes waves have tried so far, so a
    canary that fails stops the rollout before the next wave, however large the site.
    """
    limit = rollout.max_fail_pct
    targeted = [o for o in rollout.outcomes.values() if o.status != SKIPPED]
    failed = [o for o in targeted if o.status in (FAILED, UNREACHABLE)]
    tried = [o for o in targeted if o.wave is not None and o.status != NOT_RUN]
    tried_failed = [o for o in tried if o.status in (FAILED, UNREACHABLE)]
    for bad, total, what in ((failed, targeted, "nodes of this run"), (tried_failed, tried, "nodes tried")):
        if total and len(bad) * 100 > limit * len(total):
            rollout.outcome = "stopped"
            rollout.message = (f"stopped after {after}: {len(bad)} of {len(total)} {what} failed "
                               f"({100 * len(bad) / len(total):.0f}% > --max-fail-pct {limit}); "
                               "fix them and run provision again: what passed is recorded")
            return True
    return False


def cut_short(rollout: Rollout, wave: Wave) -> bool:
    """Stop when Ansible ended the wave before some of its nodes ran.

    Ansible ends a whole playbook when a play's batch fails entirely (the Kubernetes
    servers go one at a time), and the nodes it never reached are no failures of their
    own: the rollout must not go on past them, to more waves and the stack, as if the
    wave had done its work.
    """
    left = [name for name in wave.nodes if rollout.outcomes[name].status == NOT_RUN]
    if not left:
        return False
    rollout.outcome = "stopped"
    rollout.message = (f"stopped after {wave.name}: the playbook ended before {len(left)} of its "
                       f"{len(wave.nodes)} node(s) ran ({_names(rollout, left)}); "
                       "fix what ended it and run provision again: what passed is recorded")
    return True


def _names(rollout: Rollout, names: Sequence[str]) -> str:
    """Names for one line, summarised per container past summarise's limit: a wave can hold thousands."""
    return names_line([(name, _container_of(rollout, name)) for name in names])


def _container_of(rollout: Rollout, name: str) -> str:
    return str(rollout.inventory.host_vars(name)["ecohash_container"])


def _save_state(rollout: Rollout) -> None:
    """Record every node this run finished with; untouched and skipped nodes keep theirs."""
    for name, outcome in rollout.outcomes.items():
        if outcome.status in (SKIPPED, NOT_RUN):
            continue
        recorded = rollout.state.nodes.get(name)
        if recorded is not None and recorded.run == rollout.run_id:
            continue  # already saved by this run after an earlier wave
        rollout.state.record(name, rollout.fingerprints.record(
            name, outcome.fingerprint, status=outcome.status, reason=outcome.reason, run=rollout.run_id,
            duration_s=outcome.duration_s))
    rollout.state.site_vars[rollout.fingerprints.site_vars_digest] = rollout.fingerprints.site_vars
    rollout.state.save()


def _record_run(rollout: Rollout, outcome: str) -> None:
    totals = _totals(rollout)
    rollout.state.record_run({
        "run": rollout.run_id,
        "started": utc_time(rollout.started),
        "outcome": outcome,
        "message": rollout.message,
        "directory": str(rollout.directory),
        **{key: totals[key] for key in ("passed", "failed", "skipped")},
    })
    rollout.state.save()


def _stack(rollout: Rollout, display: Display) -> None:
    """Apply the site stack when possible, else render it; say which, and why."""
    try:
        _apply_or_render_stack(rollout, display)
    except BaseException as error:
        rollout.stack.update(action="interrupted" if isinstance(error, KeyboardInterrupt) else "failed",
                             reason=_error_text(error))
        raise


def _error_text(error: BaseException) -> str:
    """An error as a report says it: ecohash's own are written for the user; others are named."""
    text = str(error)
    if isinstance(error, EcohashError) and text:
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _apply_or_render_stack(rollout: Rollout, display: Display) -> None:
    # Lazy: the Automation API loads Pulumi (seconds), which only a stack apply needs.
    from ecohash.stack.automation import apply_blocker, apply_site

    site = rollout.site
    if site.kubernetes is None:
        rollout.stack.update(reason="the site declares no Kubernetes cluster")
        return
    assert rollout.directory is not None
    # Rendered and checked first either way: what is applied is what was checked, and the
    # render is kept as the rollout's record of the stack, which plan and drift compare with.
    rendered = checked_render(site, rollout.standard)
    out_dir = rollout.directory / "stack"
    files = write_render(rendered, out_dir)
    blocker = apply_blocker(site)
    if blocker is None:
        display.say("stack: applying with pulumi")
        applied = apply_site(site, preview=False, on_output=None)
        rollout.stack.update(action="applied", changes=applied.changes, backend=applied.backend_url,
                             directory=str(out_dir), objects=len(files))
    else:
        rollout.stack.update(action="rendered", reason=blocker, directory=str(out_dir), objects=len(files))
        display.say(f"stack: NOT applied ({blocker}); rendered {len(files)} objects into {out_dir}")
    record_stack(rollout.state, rendered, rollout.stack["action"], blocker, rollout.run_id)
    rollout.state.save()


def _wave_entry(wave: Wave, duration_s: float | None, failed: list[str], directory: Path | None,
                shards: int) -> dict[str, Any]:
    return {"index": wave.index, "name": wave.name, "nodes": list(wave.nodes), "duration_s": duration_s,
            "failed": failed, "directory": str(directory) if directory else None, "shards": shards}


def _totals(rollout: Rollout) -> dict[str, int]:
    statuses = [o.status for o in rollout.outcomes.values()]
    return {
        "nodes": len(statuses),
        "passed": statuses.count(PASSED),
        "failed": sum(statuses.count(s) for s in (FAILED, UNREACHABLE, INTERRUPTED)),
        "skipped": statuses.count(SKIPPED),
        "not_run": statuses.count(NOT_RUN),
    }


def _report(rollout: Rollout) -> dict[str, Any]:
    finished = time.time()
    request = rollout.request
    nodes = []
    for name, outcome in rollout.outcomes.items():
        host_vars = rollout.inventory.host_vars(name)
        verification = outcome.verification
        nodes.append({
            "name": name,
            "container": host_vars["ecohash_container"],
            "rack": host_vars["ecohash_rack"],
            "gpu_model": host_vars["ecohash_gpu_model"],
            "gpus": host_vars["ecohash_gpu_count"],
            "gpu_cap_w": host_vars["ecohash_gpu_cap_w"],
            "status": outcome.status,
            "reason": outcome.reason,
            "fingerprint": outcome.fingerprint.value,
            "wave": outcome.wave,
            "duration_s": outcome.duration_s,
            "verdict": outcome.verdict,
            "checks": [check.as_dict() for check in verification.checks] if verification else [],
            "gpu_draw_w": verification.gpu_draw_w if verification else None,
        })
    return {
        "schema": REPORT_SCHEMA,
        "site": rollout.site.name,
        "run": rollout.run_id,
        "directory": str(rollout.directory) if rollout.directory else None,
        "started": utc_time(rollout.started),
        "finished": utc_time(finished),
        "duration_s": round(finished - rollout.started, 1),
        "outcome": rollout.outcome,
        "message": rollout.message,
        "simulated": rollout.standard.simulated,
        "standard": {"name": rollout.standard.metadata.name, "file": str(standard_file_of(rollout.site))},
        "options": {"limit": request.limit, "wave_size": _wave_size_text(rollout),
                    "max_fail_pct": rollout.max_fail_pct, "shards": request.shards, "force": request.force,
                    "dry_run": request.dry_run},
        "stack": rollout.stack,
        "totals": _totals(rollout),
        "containers": _containers(rollout, nodes),
        "waves": rollout.waves,
        "nodes": nodes,
        "failed": [{"name": n["name"], "reason": n["reason"]} for n in nodes
                   if n["status"] in (FAILED, UNREACHABLE, INTERRUPTED)],
    }


def _wave_size_text(rollout: Rollout) -> str:
    serial = rollout.serial
    return ", ".join(map(str, serial)) if isinstance(serial, list) else str(serial)


def _containers(rollout: Rollout, nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    planned = plan_data(rollout.plan)["containers"]
    rows = []
    for container in planned:
        members = [n for n in nodes if n["container"] == container["name"]]
        draws = [n["gpu_draw_w"] for n in members if n["gpu_draw_w"] is not None]
        rows.append({
            "name": container["name"],
            "budget_kw": container["budget_kw"],
            "planned_draw_kw": container["draw_kw"],
            "measured_gpu_draw_kw": round(sum(draws) / 1000, 3) if draws else None,
            "gpus": container["gpus"],
            "nodes": len(members),
        })
    return rows
