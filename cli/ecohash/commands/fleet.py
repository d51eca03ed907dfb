"""`ecohash fleet`: every site's plan, sheddable power and rollout state, by region and in total."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ecohash.commands.options import CONTEXT_SETTINGS, console, json_option, print_json

# Some site could not be summed: the others were, and are printed all the same.
SOME_INVALID = 1


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("directory", metavar="[DIR]", required=False,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@json_option
@click.option("--html", "html_file", metavar="FILE", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the summary as a self-contained page (no scripts, no links out).")
def fleet(directory: Path | None, as_json: bool, html_file: Path | None) -> None:
    """Summarise every site under DIR/*/site.yaml, by region and in total.

    Without DIR: every site a name is looked up in (./inventories, $ECOHASH_INVENTORIES and
    the state directory's inventories/, where `ecohash lab up` writes the lab's site).

    Per site and summed per region and for the fleet: nodes and GPUs per model, the IT
    budget, the draw at caps and the headroom (each the site's own `ecohash plan`); MW at
    the meter that caps alone could shed, each flex tier down to its floors, and the
    throughput kept (the catalog's curves); the curtailment in force; the node standard
    and the share of nodes current at it, the last provision and the last drift check
    (this machine's state; "no state here" when it has none). Nothing is contacted.

    A site that is invalid, infeasible or repeats another's name is listed as FILE:LINE:
    message and left out of the totals; the others are still summed, and the command then
    exits 1. A DIR that is not a directory, or holds no site, exits 2.

    Example:

        ecohash fleet

        ecohash fleet inventories --html fleet.html

        ecohash fleet --json | jq '.totals.meter.shed_mw'
    """
    from ecohash.atomic import write_atomic
    from ecohash.errors import InvalidInputError
    from ecohash.fleet.render import print_fleet, render_html
    from ecohash.fleet.summary import fleet_data, no_sites_error, site_files, summarise
    from ecohash.lab.layout import inventory_file

    files = site_files(directory)
    if not files:
        raise no_sites_error(directory)
    data = fleet_data(summarise(files, lab_file=inventory_file()))
    if html_file is not None:
        try:
            write_atomic(html_file, render_html(data))
        except OSError as error:
            reason = error.strerror or error
            raise InvalidInputError(f"{html_file}: cannot write the page: {reason}") from None
    if as_json:
        print_json("fleet", data)
    else:
        print_fleet(data, console())
        if html_file is not None:
            click.echo(f"page: {html_file}")
    if data["invalid"]:
        sys.exit(SOME_INVALID)
