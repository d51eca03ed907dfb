"""`ecohash validate`: check site files, every problem at once."""

from __future__ import annotations

import click

from ecohash.budget import compile_budget
from ecohash.commands.options import CONTEXT_SETTINGS, echo_error, load
from ecohash.errors import InvalidInputError


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("sites", nargs=-1, required=True, metavar="SITE...")
@click.pass_context
def validate(ctx: click.Context, sites: tuple[str, ...]) -> None:
    """Check site inventories: syntax, keys, types, references and power budgets.

    SITE is a site name (inventories/<name>/site.yaml) or a path to a site file.
    Every problem is printed as FILE:LINE: message; the exit status is 2 if any
    site is invalid or cannot run inside its power and cooling budgets.

    Example:

        ecohash validate tx-odessa inventories/*/site.yaml
    """
    failed = False
    for argument in sites:
        try:
            site = load(argument)
            plan = compile_budget(site)
        except InvalidInputError as error:
            failed = True
            echo_error(error)
            continue
        containers = len(site.containers)
        click.echo(f"{site.file}: ok: site {site.name}, {len(plan.nodes)} nodes, "
                   f"{plan.site_domain.gpus} GPUs in {containers} container"
                   f"{'s' if containers != 1 else ''}")
    if failed:
        ctx.exit(2)
