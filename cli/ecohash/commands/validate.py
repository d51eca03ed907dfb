"""`ecohash validate`: check site files, every problem at once."""

from __future__ import annotations

import click

from ecohash.commands.options import CONTEXT_SETTINGS, echo_error, load
from ecohash.errors import InvalidInputError


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("sites", nargs=-1, required=True, metavar="SITE...")
@click.pass_context
def validate(ctx: click.Context, sites: tuple[str, ...]) -> None:
    """Check site inventories with every check plan, provision and render run.

    Syntax, keys, types and references; the power and cooling budgets; the
    Ansible inventory the site becomes (group names included); the node
    standard it names; and, for a site with a cluster, its stack, rendered,
    strict-validated and policy-checked as `ecohash render` does. Nothing is
    written and nothing contacted.

    SITE is a site name (inventories/<name>/site.yaml) or a path to a site file.
    Every problem is printed as FILE:LINE: message where the line is known; the
    exit status is 2 if any site is invalid or cannot run inside its power and
    cooling budgets.

    Example:

        ecohash validate tx-odessa inventories/*/site.yaml
    """
    from ecohash.ansible.inventory import planned_inventory
    from ecohash.stack.render import RenderCheckError, checked_render

    failed = False
    for argument in sites:
        try:
            site = load(argument)
            # What plan, provision and bootstrap build first, and refuse when it fails.
            planned = planned_inventory(site)
            # provision renders (or applies) the stack of a site with a cluster only.
            if site.kubernetes is not None:
                checked_render(site, planned.standard, planned.plan)
        except InvalidInputError as error:
            failed = True
            echo_error(error)
            continue
        except RenderCheckError as error:
            failed = True
            echo_error(InvalidInputError("\n".join(
                f"{site.file}: the site's stack fails its checks: {problem}" for problem in error.problems)))
            continue
        plan = planned.plan
        containers = len(site.containers)
        click.echo(f"{site.file}: ok: site {site.name}, {len(plan.nodes)} nodes, "
                   f"{plan.site_domain.gpus} GPUs in {containers} container"
                   f"{'s' if containers != 1 else ''}")
    if failed:
        ctx.exit(2)
