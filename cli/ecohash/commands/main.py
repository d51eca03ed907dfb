"""The `ecohash` command group: global options and error handling."""

from __future__ import annotations

import sys
from typing import Any

import click

from ecohash import __version__
from ecohash.commands.apply import apply
from ecohash.commands.bootstrap import bootstrap
from ecohash.commands.bundle import bundle
from ecohash.commands.capacity import capacity
from ecohash.commands.curtail import curtail
from ecohash.commands.drift import drift
from ecohash.commands.fleet import fleet
from ecohash.commands.grid import grid
from ecohash.commands.lab import lab
from ecohash.commands.options import CONTEXT_SETTINGS, echo_error, echo_json_error, exit_code_for
from ecohash.commands.plan import plan
from ecohash.commands.provision import provision
from ecohash.commands.render import render
from ecohash.commands.schema import schema
from ecohash.commands.status import status
from ecohash.commands.validate import validate
from ecohash.errors import EcohashError


class EcohashGroup(click.Group):
    """Turns ecohash's own exceptions into messages and exit codes, never tracebacks."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EcohashError as error:
            exit_code = exit_code_for(ctx, error)
            echo_error(error)
            echo_json_error(ctx, error, exit_code)
            sys.exit(exit_code)
        except click.ClickException as error:
            # A usage error: click prints it to stderr and exits as usual; --json adds the
            # object to stdout (when --json was read before the error stopped parsing).
            echo_json_error(ctx, error, error.exit_code)
            raise


@click.group(cls=EcohashGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="ecohash")
def cli() -> None:
    """Turn a site inventory into a reproducible, power-bounded GPU node rollout.

    Example:

        ecohash validate inventories/*/site.yaml

        ecohash plan tx-odessa
    """


for command in (validate, plan, capacity, curtail, grid, provision, status, drift, fleet, bootstrap, render,
                apply, schema, lab, bundle):
    cli.add_command(command)
