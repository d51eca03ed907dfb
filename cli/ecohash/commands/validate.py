"""`ecohash validate`: check site files, every problem at once."""

from __future__ import annotations

from typing import Any

import click

from ecohash.commands.options import CONTEXT_SETTINGS, echo_error, json_option, load, print_json
from ecohash.errors import InvalidInputError
from ecohash.json_contract import problem_data, problems_of


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("sites", nargs=-1, required=True, metavar="SITE...")
@json_option
@click.pass_context
def validate(ctx: click.Context, sites: tuple[str, ...], as_json: bool) -> None:
    """Check site inventories with every check plan, provision and render run.

    Syntax, keys, types and references; the power and cooling budgets; the
    Ansible inventory the site becomes (group names included); the node
    standard it names; and, for a site with a cluster, its stack, rendered,
    strict-validated and policy-checked as `ecohash render` does. Nothing is
    written and nothing contacted.

    SITE is a site name (inventories/<name>/site.yaml) or a path to a site file.
    Every problem is printed as FILE:LINE: message where the line is known; the
    exit status is 2 if any site is invalid or cannot run inside its power and
    cooling budgets. With --json, one object lists each site and every problem
    with its file, line and message (an empty list when all are valid).

    Example:

        ecohash validate tx-odessa inventories/*/site.yaml

        ecohash validate inventories/*/site.yaml --json | jq '.problems[]'
    """
    from ecohash.ansible.inventory import planned_inventory
    from ecohash.stack.render import RenderCheckError, checked_render

    results = []
    problems: list[dict[str, Any]] = []
    for argument in sites:
        try:
            site = load(argument)
            # What plan, provision and bootstrap build first, and refuse when it fails.
            planned = planned_inventory(site)
            # provision renders (or applies) the stack of a site with a cluster only.
            if site.kubernetes is not None:
                checked_render(site, planned.standard, planned.plan)
        except InvalidInputError as error:
            results.append({"site": argument, "valid": False})
            problems += problems_of(error, where=argument)
            echo_error(error)
            continue
        except RenderCheckError as error:
            results.append({"site": argument, "valid": False})
            found = [problem_data(str(site.file), None, f"the site's stack fails its checks: {problem}")
                     for problem in error.problems]
            problems += found
            echo_error(InvalidInputError("\n".join(f"{p['file']}: {p['message']}" for p in found)))
            continue
        plan = planned.plan
        containers = len(site.containers)
        results.append({"site": argument, "valid": True, "name": site.name, "file": str(site.file),
                        "nodes": len(plan.nodes), "gpus": plan.site_domain.gpus, "containers": containers})
        if not as_json:
            click.echo(f"{site.file}: ok: site {site.name}, {len(plan.nodes)} nodes, "
                       f"{plan.site_domain.gpus} GPUs in {containers} container"
                       f"{'s' if containers != 1 else ''}")
    failed = any(not result["valid"] for result in results)
    if as_json:
        print_json("validate", {"valid": not failed, "sites": results, "problems": problems})
    if failed:
        ctx.exit(2)

