"""`ecohash schema`: the site file's JSON Schema, for editors."""

from __future__ import annotations

import click

from ecohash.commands.options import CONTEXT_SETTINGS, print_json
from ecohash.inventory.model import site_json_schema


@click.command(context_settings=CONTEXT_SETTINGS)
def schema() -> None:
    """Print the JSON Schema of site inventory files.

    Point yaml-language-server at it and editors complete and check site files
    as you type.

    Example:

        ecohash schema > site.schema.json

        # then, first line of a site file:
        # yaml-language-server: $schema=../../site.schema.json
    """
    print_json(site_json_schema())
