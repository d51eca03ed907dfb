"""`ecohash status`: each node's recorded rollout result, and whether it is still current."""

from __future__ import annotations

import click

from ecohash.commands.options import CONTEXT_SETTINGS, console, json_option, load, print_json, site_argument

# Above this many nodes the table shows the ones that need attention, not every node.
MAX_ROWS = 200


@click.command(context_settings=CONTEXT_SETTINGS)
@site_argument
@json_option
def status(site: str, as_json: bool) -> None:
    """Show SITE's rollout state: per node, the last result, its fingerprint, and whether
    the node is current (passed at the fingerprint its inputs give today).

    Read from the state directory (rollouts/SITE/state.json); nothing is contacted.

    Example:

        ecohash status tx-odessa

        ecohash status tx-odessa --json | jq '.nodes[] | select(.current | not) | .name'
    """
    from rich.table import Table

    from ecohash.grid.events import curtailment_data, event_in_force
    from ecohash.rollout.status import site_status

    loaded = load(site)
    data = site_status(loaded)
    event = event_in_force(loaded.name)
    data["curtailment"] = curtailment_data(event) if event else None
    if as_json:
        print_json("status", data)
        return
    out = console()
    nodes = data["nodes"]
    shown = nodes if len(nodes) <= MAX_ROWS else [n for n in nodes if not n["current"]][:MAX_ROWS]
    counts = ", ".join(f"{count} {kind}" for kind, count in sorted(data["counts"].items()))
    table = Table(title=f"{data['site']}: {counts}")
    for column in ("node", "container", "status", "current", "fingerprint", "cap W", "when", "run", "reason"):
        table.add_column(column)
    for node in shown:
        current = "yes" if node["current"] else ("no: " + ", ".join(node["changed"]) + " changed"
                                                if node["changed"] else "no")
        cap = str(node["gpu_cap_w"] or "-")
        if node["recorded_gpu_cap_w"] not in (None, node["gpu_cap_w"]):
            cap = f"{node['recorded_gpu_cap_w']} -> {cap}"
        table.add_row(node["name"], node["container"], node["status"], current,
                      (node["recorded_fingerprint"] or "-")[:12], cap, node["recorded_at"] or "-",
                      node["run"] or "-", node["reason"] or "")
    if len(shown) < len(nodes):
        table.caption = f"{len(nodes) - len(shown)} current nodes not shown; --json lists every node"
    out.print(table)
    if event is not None:
        out.print(event.summary(), markup=False, highlight=False, soft_wrap=True)
    out.print(f"state: {data['state_file']}", markup=False, highlight=False)
