"""`ecohash schema`: the site file's JSON Schema, for editors."""

from __future__ import annotations

import click

from ecohash.commands.options import CONTEXT_SETTINGS
from ecohash.inventory.model import site_json_schema
from ecohash.json_text import dumps_indented


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
    # The site file's schema itself, for editors: not an output of the JSON contract.
    click.echo(dumps_indented(site_json_schema()))
