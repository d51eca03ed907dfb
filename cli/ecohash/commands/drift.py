"""`ecohash drift`: the nodes and objects of a site that no longer match its inventory."""

from __future__ import annotations

import sys
from typing import Any

import click

from ecohash.commands.options import (
    CHANGES,
    CONTEXT_SETTINGS,
    DetailedExitCommand,
    console,
    here_option,
    json_option,
    load,
    print_json,
    shards_option,
    site_argument,
)

MAX_DIFF_LINES = 40


@click.command(cls=DetailedExitCommand, context_settings=CONTEXT_SETTINGS)
@site_argument
@click.option("--limit", "-l", metavar="PATTERN",
              help="Only these nodes or groups (Ansible pattern, e.g. container_c01 or c01-r01-n0*).")
@here_option
@shards_option
@json_option
def drift(site: str, limit: str | None, here: bool, shards: int | None, as_json: bool) -> None:
    """Find where SITE no longer matches its inventory; change nothing.

    Runs playbooks/bootstrap.yml in Ansible's check mode with diff on every node
    that answers, so anything a rollout would change is drift: a managed file
    edited by hand (shown as a diff), a package, a unit, a GPU power limit set by
    hand. A site that names an executor (spec.provisioning.executor) runs the
    check there, over SSH. The stack is previewed with pulumi where the CLI and the cluster are
    reachable; otherwise the render is compared with the last rollout's.

    Exits 0 when nothing drifted, 2 when anything did, 1 on any error (invalid
    input included, and when no node answered), 130 when interrupted. Nodes that
    do not answer are listed but not judged. The report is kept as drift.json in
    the run's directory. A large site is checked by several Ansible jobs at once
    over slices of its nodes (--shards).

    Example:

        ecohash drift tx-odessa

        ecohash drift lab --json | jq '.nodes[] | select(.status == "drifted")'
    """
    from ecohash.ansible.progress import ProgressView
    from ecohash.interrupts import interrupt_requests
    from ecohash.rollout.drift import DriftRequest, find_drift

    request = DriftRequest(load(site), limit, here, shards)
    # Progress goes to stderr, and only on a terminal: --json's stdout is the report alone,
    # and in a log a node failing its check is a finding for the report, not a line of its own.
    err = console(stderr=True)
    with interrupt_requests() as cancel, ProgressView(err, live=err.is_terminal, title="drift check") as view:
        report = find_drift(request, view.update if err.is_terminal else lambda _progress: None, cancel)
    from ecohash.grid.events import curtailment_data, event_in_force

    event = event_in_force(request.site.name)
    if as_json:
        print_json("drift", {**report, "curtailment": curtailment_data(event) if event else None})
    else:
        if event is not None:
            # Its caps are the nodes' caps in force, so they are not drift; said once, here.
            console().print(event.summary(), markup=False, highlight=False, soft_wrap=True)
        _print_report(report, console())
    if report["drifted"]:
        sys.exit(CHANGES)


def _print_report(report: dict[str, Any], out: Any) -> None:
    from ecohash.rollout.changes import object_label

    def line(text: str) -> None:
        out.print(text, markup=False, highlight=False, soft_wrap=True)

    for node in report["nodes"]:
        if node["status"] == "unreachable":
            line(f"{node['name']}: not checked: {node['reason']}")
        if node["status"] != "drifted":
            continue
        line(f"{node['name']}: drifted")
        for change in node["changes"]:
            where = f" {change['path']}" if change["path"] else ""
            line(f"  would change{where}: {change['role'] or 'playbook'}: {change['task']}")
            diff = (change["diff"] or "").splitlines()
            for diff_line in diff[:MAX_DIFF_LINES]:
                line(f"      {diff_line}")
            if len(diff) > MAX_DIFF_LINES:
                line(f"      ... {len(diff) - MAX_DIFF_LINES} more lines in drift.json")
        for finding in node["findings"]:
            line(f"  {finding}")
    stack = report["stack"]
    for obj in stack["objects"]:
        if "count" in obj:
            line(f"stack: {obj['count']} object(s) to {obj['action']} (pulumi preview)")
            continue
        line(f"stack: {object_label(obj)}: {obj['action']}")
        for diff_line in (obj["diff"] or "").splitlines()[:MAX_DIFF_LINES]:
            line(f"      {diff_line}")
    counts = report["counts"]
    line(f"{report['site']}: {counts['drifted']} node(s) drifted, {counts['in-standard']} in standard, "
         f"{counts['unreachable']} not checked; {len(stack['objects'])} stack object change(s) "
         f"({stack['method']}{': ' + stack['reason'] if stack['reason'] else ''})")
    line(f"drift report: {report['directory']}/drift.json")
