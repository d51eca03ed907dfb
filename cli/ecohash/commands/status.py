"""`ecohash status`: each node's recorded rollout result, and whether it is still current."""

from __future__ import annotations

import click

from ecohash.commands.options import (
    CONTEXT_SETTINGS,
    all_option,
    console,
    json_option,
    load,
    print_json,
    site_argument,
)


@click.command(context_settings=CONTEXT_SETTINGS)
@site_argument
@json_option
@all_option
def status(site: str, as_json: bool, show_all: bool) -> None:
    """Show SITE's rollout state: per node, the last result, its fingerprint, and whether
    the node is current (passed at the fingerprint its inputs give today).

    Read from the state directory (rollouts/SITE/state.json); nothing is contacted.

    Example:

        ecohash status tx-odessa

        ecohash status tx-odessa --json | jq '.nodes[] | select(.current | not) | .name'
    """

    from ecohash.grid.events import curtailment_data, event_in_force
    from ecohash.rollout.status import site_status
    from ecohash.tables import print_status

    loaded = load(site)
    data = site_status(loaded)
    event = event_in_force(loaded.name)
    data["curtailment"] = curtailment_data(event) if event else None
    if as_json:
        print_json("status", data)
        return
    out = console()
    print_status(data, out, show_all)
    if event is not None:
        out.print(event.summary(), markup=False, highlight=False, soft_wrap=True)
    out.print(f"state: {data['state_file']}", markup=False, highlight=False)
