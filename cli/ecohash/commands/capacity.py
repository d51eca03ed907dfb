"""`ecohash capacity`: how many more nodes of a SKU fit, before anyone buys them."""

from __future__ import annotations

import click

from ecohash.budget import compile_budget
from ecohash.capacity import capacity as room_for
from ecohash.commands.options import CONTEXT_SETTINGS, console, json_option, load, print_json, site_argument


@click.command(context_settings=CONTEXT_SETTINGS)
@site_argument
@click.option("--sku", required=True, help="Node SKU to add, from the site or the built-in catalog.")
@click.option("--cap", "cap_w", type=click.IntRange(min=1), metavar="W",
              help="Per-GPU power cap the new nodes run at, in watts. Default: the GPU's TDP.")
@json_option
def capacity(site: str, sku: str, cap_w: int | None, as_json: bool) -> None:
    """Count how many more SKU nodes each container and the whole site can take.

    New nodes go into new racks of an existing container and run at --cap,
    without lowering any cap the current plan sets.

    Example:

        ecohash capacity tx-odessa --sku hgx-h100-8 --cap 550
    """
    result = room_for(compile_budget(load(site)), sku, cap_w)
    if as_json:
        from ecohash.report import capacity_data

        print_json("capacity", capacity_data(result))
        return
    from ecohash.tables import print_capacity

    print_capacity(result, console())
