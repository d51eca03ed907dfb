"""`ecohash plan`: the site's budgets and the GPU caps that keep it inside them."""

from __future__ import annotations

import click

from ecohash.budget import compile_budget
from ecohash.commands.options import CONTEXT_SETTINGS, console, json_option, load, print_json, site_argument


@click.command(context_settings=CONTEXT_SETTINGS)
@site_argument
@json_option
def plan(site: str, as_json: bool) -> None:
    """Compile SITE's power and cooling budgets into per-GPU power caps.

    Shows, per container, the budget, the draw at TDP and at the caps, the
    headroom, and which rack, container or the site set each cap. An
    infeasible site exits with status 2, naming each domain that cannot fit.

    Example:

        ecohash plan tx-odessa

        ecohash plan inventories/tx-odessa/site.yaml --json | jq '.nodes[0]'
    """
    compiled = compile_budget(load(site))
    if as_json:
        from ecohash.report import plan_data

        print_json(plan_data(compiled))
        return
    from ecohash.tables import print_plan

    print_plan(compiled, console())
