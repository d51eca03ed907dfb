"""`ecohash plan`: the site's budgets and caps, and what a rollout would change."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ecohash.budget import compile_budget
from ecohash.commands.options import (
    CHANGES,
    CONTEXT_SETTINGS,
    DetailedExitCommand,
    console,
    json_option,
    load,
    print_json,
    site_argument,
)

# Above this many rows a text plan lists the first ones; --json lists everything.
MAX_NODE_ROWS = 200
MAX_NAMES = 10
MAX_DIFF_LINES = 60


@click.command(cls=DetailedExitCommand, context_settings=CONTEXT_SETTINGS,
               detailed_when=lambda args: "--detailed-exitcode" in args)
@site_argument
@json_option
@click.option("--detailed-exitcode", is_flag=True,
              help="Exit 0 when nothing would change, 2 when changes are pending, 1 on any "
                   "error, invalid input included (as terraform's).")
def plan(site: str, as_json: bool, detailed_exitcode: bool) -> None:
    """Compile SITE's power and cooling budgets into per-GPU power caps, and show what a
    rollout would change.

    Shows, per container, the budget, the draw at TDP and at the caps, the
    headroom, and which rack, container or the site set each cap. An
    infeasible site exits with status 2 (1 with --detailed-exitcode), naming
    each domain that cannot fit.

    Once SITE has rollout state (or with --detailed-exitcode), the inventory's
    intended state is compared with the last rollout: each node to create,
    update (which fingerprint part changed, variables named with old and new
    values), retry or remove, and each Kubernetes object to create, update
    (with a diff) or delete. Nothing is contacted; the output holds no clock.

    Example:

        ecohash plan tx-odessa

        ecohash plan tx-odessa --detailed-exitcode --json > plan.json; echo $?
    """
    from ecohash.grid.events import curtailment_data, event_in_force
    from ecohash.rollout.state import RolloutState

    loaded = load(site)
    event = event_in_force(loaded.name)
    compiled = compile_budget(loaded)
    changes = None
    if detailed_exitcode or RolloutState.file_for(loaded.name).exists():
        from ecohash.rollout.changes import site_changes

        changes = site_changes(loaded)
    if as_json:
        from ecohash.report import plan_data

        print_json("plan", {**plan_data(compiled), **({"changes": changes} if changes is not None else {}),
                    **({"curtailment": curtailment_data(event)} if event is not None else {})})
    else:
        from ecohash.tables import print_plan

        out = console()
        print_plan(compiled, out)
        if event is not None:
            # The plan's caps stay the plan's: an event lowers them for a while, on its own record.
            out.print(event.summary(), markup=False, highlight=False, soft_wrap=True)
        if changes is not None:
            _print_changes(changes, out)
    if detailed_exitcode and changes is not None and changes["pending"]:
        sys.exit(CHANGES)


def _print_changes(changes: dict[str, Any], out: Any) -> None:
    from ecohash.rollout.changes import CREATE, object_label

    def line(text: str = "", style: str | None = None) -> None:
        out.print(text, style=style, markup=False, highlight=False, soft_wrap=True)

    line()
    line(f"Changes against the last rollout ({_last(changes)}):", style="bold")
    nodes, objects = changes["nodes"], changes["objects"]
    if not changes["pending"]:
        line("  none: every node passed at the fingerprint its inputs give today, and the "
             "stack renders as the last rollout left it.")
        return
    new = [node["name"] for node in nodes if node["action"] == CREATE]
    if new:
        line(f"  {len(new)} node(s) to create (never provisioned): " + ", ".join(new[:MAX_NAMES])
             + (" ..." if len(new) > MAX_NAMES else ""))
    others = [node for node in nodes if node["action"] != CREATE]
    for node in others[:MAX_NODE_ROWS]:
        line(f"  node {node['name']}: {node['action']}: {node['reason']}")
        for var in node["vars"]:
            line(f"      {var['name']}: {_value(var['from'])} -> {_value(var['to'])}")
    if len(others) > MAX_NODE_ROWS:
        line(f"  ... and {len(others) - MAX_NODE_ROWS} more nodes (--json lists every one)")
    for obj in objects:
        line(f"  object {object_label(obj)}: {obj['action']}")
        diff = (obj["diff"] or "").splitlines()
        for diff_line in diff[:MAX_DIFF_LINES]:
            line(f"      {diff_line}")
        if len(diff) > MAX_DIFF_LINES:
            line(f"      ... {len(diff) - MAX_DIFF_LINES} more diff lines (--json has the whole diff)")
    counts = ", ".join(f"{count} {key.replace('_', ' ')}" for key, count in changes["counts"].items())
    line(f"Pending: {counts}.", style="bold")


def _last(changes: dict[str, Any]) -> str:
    run, stack = changes["last_run"], changes["stack"]
    if run is None and stack is None:
        return "none recorded"
    text = f"run {run['run']}, {run['outcome']}" if run else "no provision run"
    if stack:
        # Named when not the last run's: `ecohash apply`, or a run before a stopped one.
        by = f" by {stack['run']}" if stack["run"] != (run or {}).get("run") else ""
        text += f"; stack applied{by}" if stack["action"] == "applied" \
            else f"; stack rendered{by}, not applied: {stack['reason']}"
    return text


def _value(value: Any) -> str:
    return "(none)" if value is None else json.dumps(value, sort_keys=True)
