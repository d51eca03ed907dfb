"""The `ecohash` command group: global options, error handling, and the order commands are listed in."""

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
from ecohash.commands.options import (
    CONTEXT_SETTINGS,
    JSON_WANTED,
    echo_error,
    echo_json_error,
    exit_code_for,
    usage_error_wants_json,
)
from ecohash.commands.plan import plan
from ecohash.commands.provision import provision
from ecohash.commands.render import render
from ecohash.commands.schema import schema
from ecohash.commands.status import status
from ecohash.commands.validate import validate
from ecohash.errors import EcohashError
from ecohash.interrupts import INTERRUPTED_EXIT


class EcohashGroup(click.Group):
    """Turns ecohash's own exceptions into messages and exit codes, never tracebacks, and
    lists its commands in the order they were added: the order people use them in."""

    def invoke(self, ctx: click.Context) -> Any:
        # The subcommand's arguments, copied before it parses them: a usage error leaves its
        # --json unread.
        arguments = list(ctx.args)
        try:
            return super().invoke(ctx)
        except EcohashError as error:
            exit_code = exit_code_for(ctx, error)
            echo_error(error)
            echo_json_error(ctx, error, exit_code)
            sys.exit(exit_code)
        except click.ClickException as error:
            # A usage error: click prints it to stderr and exits as usual; --json adds the
            # object to stdout, whether or not parsing got as far as reading --json.
            if isinstance(error, click.UsageError) and usage_error_wants_json(ctx, error, arguments):
                ctx.meta[JSON_WANTED] = True
            echo_json_error(ctx, error, error.exit_code)
            raise
        except click.Abort as abort:
            # click turns Ctrl-C or end of input at a prompt into the Abort that a "no" to
            # confirm(abort=True) raises too; only the "no" keeps click's "Aborted!", exit 1.
            # An interrupt is 130 here as anywhere, and as every prompt asks before applying
            # changes, none were.
            if not isinstance(abort.__context__, (KeyboardInterrupt, EOFError)):
                raise
            click.echo()  # the prompt's line is left open, and the message needs its own
            click.echo("ecohash: interrupted at the prompt: nothing was applied", err=True)
            sys.exit(INTERRUPTED_EXIT)
        except KeyboardInterrupt:
            # Here, once, for every command: click would print "Aborted!" and exit 1, which a
            # script cannot tell from a failure; 130 is what a shell reports for Ctrl-C.
            click.echo("ecohash: interrupted", err=True)
            sys.exit(INTERRUPTED_EXIT)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


@click.group(cls=EcohashGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="ecohash")
def cli() -> None:
    """Turn a site inventory into a reproducible, power-bounded GPU node rollout.

    Example:

        ecohash validate inventories/*/site.yaml

        ecohash plan tx-odessa
    """


# The order of use, with the summary `ecohash --help` shows for each: check and plan a site,
# build its nodes, watch them, run it on the grid, then the fleet-wide and offline tools.
# The summaries live here, not in each command, because they are written to be read as
# one list, short enough that an 80-column terminal shows them whole.
COMMANDS_IN_ORDER_OF_USE = (
    (validate, "Check site files with every check the commands run."),
    (plan, "Compile SITE's budgets into GPU caps; show what changes."),
    (capacity, "Count how many more nodes of a SKU SITE can take."),
    (render, "Write SITE's Kubernetes objects, without a cluster."),
    (bootstrap, "Run the node playbook on SITE's nodes, in batches."),
    (provision, "Roll SITE out: canary, waves, verify, then the stack."),
    (status, "Show each node's recorded rollout result."),
    (drift, "Find where SITE no longer matches its inventory."),
    (apply, "Apply SITE's stack with Pulumi."),
    (curtail, "Cut SITE's draw to a grid target; show it; release it."),
    (grid, "Follow the grid's signals and curtail unattended."),
    (bundle, "Build, verify and load a site's offline bundle."),
    (fleet, "Summarise every site, by region and in total."),
    (lab, "Run the lab: Debian hosts in network namespaces."),
    (schema, "Print the JSON Schema of site files."),
)
for command, summary in COMMANDS_IN_ORDER_OF_USE:
    command.short_help = summary
    cli.add_command(command)
