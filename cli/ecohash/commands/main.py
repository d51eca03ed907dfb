"""The `ecohash` command group: global options and error handling."""

from __future__ import annotations

import sys
from typing import Any

import click

from ecohash import __version__
from ecohash.errors import EcohashError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class EcohashGroup(click.Group):
    """Turns ecohash's own exceptions into messages and exit codes, never tracebacks."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EcohashError as error:
            for line in str(error).splitlines() or [type(error).__name__]:
                click.echo(f"ecohash: {line}" if _is_bare(line) else line, err=True)
            sys.exit(error.exit_code)


def _is_bare(line: str) -> bool:
    """True for a message that does not already start with FILE:LINE."""
    head = line.split(": ", 1)[0]
    return not (":" in head and head.rsplit(":", 1)[-1].isdigit())


@click.group(cls=EcohashGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="ecohash")
def cli() -> None:
    """Turn a site inventory into a reproducible, power-bounded GPU node rollout.

    Example:

        ecohash validate inventories/*/site.yaml

        ecohash plan tx-odessa
    """


def register(group: click.Group, *commands: click.Command) -> None:
    for command in commands:
        group.add_command(command)


from ecohash.commands.lab import lab  # noqa: E402

cli.add_command(lab)
