"""Drift: where a site no longer matches its inventory, found without changing anything.

Nodes: playbooks/bootstrap.yml runs in Ansible's check mode with diff on every node in
scope, through the same tasks a rollout uses, so whatever a rollout would change is
drift: a managed file edited by hand (with its diff), a package or unit changed, a GPU
power limit set by hand (the cap task would apply it again, and the acceptance check
names the limit found and the one the budget sets). Nodes that do not answer are
listed, not judged.

Objects: with the pulumi CLI and a reachable cluster, a preview of the site stack
(refreshing live state first); without them, the stack rendered now against the last
rollout's render, object by object.

Check mode changes nothing on the nodes, but the site lock is still taken so that a
drift check never reports a rollout's half-way state as drift.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ecohash.ansible.inventory import SERVERS_GROUP, planned_inventory
from ecohash.ansible.patterns import select_hosts
from ecohash.ansible.remote import Executor
from ecohash.ansible.runner import (
    REPORT_TASK,
    UNANSWERED,
    HostProgress,
    PlaybookRun,
    new_run_directory,
)
from ecohash.ansible.shards import run_sharded, shard_count
from ecohash.atomic import write_atomic
from ecohash.errors import EcohashError
from ecohash.inventory.site import Site
from ecohash.locks import site_lock
from ecohash.paths import runs_dir
from ecohash.rollout.changes import object_changes
from ecohash.rollout.state import RolloutState
from ecohash.stack.render import checked_render
from ecohash.standard import NodeStandard
from ecohash.timestamps import utc_time

DRIFT_SCHEMA = 1
REPORT_FILE_NAME = "drift.json"
DRIFTED, IN_STANDARD, UNREACHABLE = "drifted", "in-standard", "unreachable"


class NothingCheckedError(EcohashError):
    """No node in scope answered: a drift check that checked nothing must not pass."""


class DriftInterruptedError(EcohashError):
    """Ctrl-C or SIGTERM: the check run was stopped; nothing is judged."""

    exit_code = 130


@dataclass(frozen=True)
class DriftRequest:
    site: Site
    limit: str | None = None
    here: bool = False  # run Ansible on this machine even when the site names an executor
    shards: int | None = None  # ansible-runner jobs over slices of the nodes; default: from the cores


def find_drift(request: DriftRequest, on_update: Callable[[HostProgress], None],
               cancel: threading.Event | None = None) -> dict[str, Any]:
    """Check the site's nodes and stack; return the drift report (also written as drift.json)."""
    site = request.site
    planned = planned_inventory(site)
    scope = select_hosts(planned.inventory, request.limit)
    executor = None if request.here else Executor.of_site(site)
    if executor is not None:
        executor.check_site_keys(site, planned.inventory)  # exit 2 before anything starts
    with site_lock(site.name, "drift"):
        state = RolloutState.load(site.name)  # a damaged state file stops the check before it runs
        directory = new_run_directory(site.name, "drift")
        started = utc_time()
        result = run_sharded(PlaybookRun(
            site_name=site.name, site_file=site.file, playbook="bootstrap.yml", check=True,
            hosts=scope,
            # Every node at once, none allowed to stop the others: a check, not a rollout.
            serial=len(scope), max_fail_percentage=100, directory=directory,
            executor=executor,
        ), shard_count(request.shards, len(scope)), on_update, cancel,
            # Check mode starts nothing, so agents need no server up; the servers keep
            # bootstrap.yml's one-at-a-time play together all the same.
            together=planned.inventory.groups.get(SERVERS_GROUP, []))
        if cancel is not None and cancel.is_set():
            raise DriftInterruptedError(f"drift check of {site.name} interrupted; events in {directory}")
        if result.reason:
            # Partial events prove nothing about the nodes the run never finished.
            raise EcohashError(f"the check run of {site.name} failed: {result.reason}; "
                               f"see {directory}/artifacts")
        if scope and not result.hosts:
            raise EcohashError(f"the check run of {site.name} failed before any node ran "
                               f"({result.status}, exit {result.rc}); see {directory}/artifacts")
        nodes = [node_drift(name, result.hosts.get(name)) for name in scope]
        stack = stack_drift(site, planned.standard, state)
    report: dict[str, Any] = {
        "schema": DRIFT_SCHEMA,
        "site": site.name,
        "run": directory.name,
        "directory": str(directory),
        "started": started,
        "finished": utc_time(),
        "drifted": any(n["status"] == DRIFTED for n in nodes) or bool(stack["objects"]),
        "counts": {status: sum(n["status"] == status for n in nodes)
                   for status in (DRIFTED, IN_STANDARD, UNREACHABLE)},
        "nodes": nodes,
        "stack": stack,
    }
    write_atomic(directory / REPORT_FILE_NAME, json.dumps(report, indent=1) + "\n")
    if scope and report["counts"][UNREACHABLE] == len(scope):
        raise NothingCheckedError(f"no node of {site.name} answered: nothing was checked "
                                  f"(report: {directory / REPORT_FILE_NAME})")
    return report


def last_drift(site_name: str) -> dict[str, Any] | None:
    """The last drift check's report kept on this machine, None when there is none.

    Run directories begin with their UTC time (ansible.runner.new_run_directory), so the
    last by name is the newest; only drift checks leave a report there.
    """
    reports = sorted(runs_dir(site_name).glob(f"*/{REPORT_FILE_NAME}"),
                     key=lambda path: path.parent.name)
    if not reports:
        return None
    path = reports[-1]
    try:
        report = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise EcohashError(f"{path}: unreadable drift report ({error})") from None
    if not isinstance(report, dict) or report.get("schema") != DRIFT_SCHEMA:
        raise EcohashError(f"{path}: not a drift report of schema {DRIFT_SCHEMA}")
    return report


def node_drift(name: str, progress: HostProgress | None) -> dict[str, Any]:
    """One node's findings from its check-mode run: what would change, and failed checks."""
    if progress is None:
        return {"name": name, "status": UNREACHABLE, "reason": "not reached by the check run",
                "changes": [], "findings": []}
    failure = (progress.failure or "").removeprefix(REPORT_TASK)
    if progress.state == UNREACHABLE or failure.startswith(UNANSWERED):
        return {"name": name, "status": UNREACHABLE, "reason": failure or UNANSWERED,
                "changes": [], "findings": []}
    findings = [_check_finding(check) for check in (progress.health or {}).get("checks", [])
                if not check.get("passed")]
    if progress.state == "failed" and not failure.startswith("failed acceptance"):
        findings.append(f"the check stopped: {failure}")
    changes = [change.as_dict() for change in progress.changes]
    if not (changes or findings or progress.ran_node_play):
        # Events alone prove nothing: a playbook Ansible ended early (a server failed before
        # the agents' play) leaves the nodes it never reached with ok events and no error.
        return {"name": name, "status": UNREACHABLE, "changes": [], "findings": [],
                "reason": "the check run ended before this node's checks ran"}
    status = DRIFTED if changes or findings else IN_STANDARD
    return {"name": name, "status": status, "reason": None, "changes": changes, "findings": findings}


def _check_finding(check: dict[str, Any]) -> str:
    text = f"acceptance check {check.get('check')}: found {check.get('found')}"
    return text + (f", expected {check['expected']}" if "expected" in check else "")


def stack_drift(site: Site, standard: NodeStandard, state: RolloutState) -> dict[str, Any]:
    """The stack's drift: a pulumi preview where possible, else the render against the last one."""
    # Lazy: the Automation API loads Pulumi (seconds), which only a stack preview needs.
    from ecohash.stack.automation import apply_blocker, apply_site

    if site.kubernetes is None:
        return {"method": "none", "reason": "the site declares no Kubernetes cluster", "objects": []}
    blocker = apply_blocker(site)
    if blocker is None:
        preview = apply_site(site, preview=True, on_output=None)
        return {"method": "pulumi preview", "reason": None,
                "objects": [{"action": op, "count": count} for op, count in sorted(preview.changes.items())
                            if op != "same" and count]}
    reason = f"{blocker}: compared the render with the last rollout's"
    if state.stack is None:
        reason += " (none recorded: every object is new)"
    return {"method": "render", "reason": reason,
            "objects": object_changes(checked_render(site, standard), state)}
