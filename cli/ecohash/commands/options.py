"""Options and arguments shared by several commands."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click
from pydantic_core import PydanticCustomError

from ecohash.ansible.shards import MIN_NODES_PER_SHARD
from ecohash.errors import EcohashError
from ecohash.inventory import Site, load_site
from ecohash.inventory.model import parse_batch
from ecohash.json_contract import error_data, stamped
from ecohash.json_text import dumps_indented
from ecohash.paths import resolve_site

F = TypeVar("F", bound=Callable[..., Any])

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

# ctx.meta keys (meta is shared by a command's context and its group's): --json was given,
# so an error is printed as the error object on stdout; and an output was printed, so a
# failure after it (provision's failed nodes) adds no second object to stdout.
JSON_WANTED = "ecohash.json_wanted"
JSON_PRINTED = "ecohash.json_printed"


def _want_json(ctx: click.Context, _parameter: click.Parameter, value: bool) -> bool:
    ctx.meta[JSON_WANTED] = value
    return value


JSON_FLAG = "--json"
# ctx.meta key: the command with --json whose arguments click is parsing, or parsed last.
JSON_COMMAND_PARSING = "ecohash.json_command_parsing"


class _JsonOption(click.Option):
    def add_to_parser(self, parser: Any, ctx: click.Context) -> None:
        # Some of click's parser errors (an option missing its value) carry no context; this
        # names the command they stopped, so --json given to it still gets the error object.
        ctx.meta[JSON_COMMAND_PARSING] = ctx.command
        super().add_to_parser(parser, ctx)


# Eager, so it is read before the options whose callbacks can fail: their errors, too,
# come as the error object.
json_option = click.option(JSON_FLAG, "as_json", cls=_JsonOption, is_flag=True, is_eager=True,
                           callback=_want_json,
                           help="Print one JSON object (docs/json.md) instead of a table.")
# Past 50 nodes text is summarised per container (ecohash.summarise); this shows every one.
all_option = click.option("--all", "show_all", is_flag=True,
                          help="List every node, however many (past 50 the text summarises per container).")
here_option = click.option(
    "--here", is_flag=True,
    help="Run Ansible on this machine even when the site names an executor (spec.provisioning.executor).")


# ctx.meta key (meta is shared by a command's context and its group's): set when the
# command reports with detailed exit codes, so any error, bad input included, exits 1.
DETAILED_EXIT = "ecohash.detailed_exit"
NO_CHANGES, ERROR, CHANGES = 0, 1, 2


class DetailedExitCommand(click.Command):
    """A command whose status is 0 (nothing to change), 2 (changes or drift) or 1 (any error).

    As terraform's --detailed-exitcode: 2 must always mean "changes", so a usage error or
    an invalid site, which other commands report with 2, exits 1 here. `detailed_when`
    says, from the raw arguments, whether this invocation asked for it.
    """

    def __init__(self, *args: Any, detailed_when: Callable[[list[str]], bool] = lambda _args: True,
                 **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.detailed_when = detailed_when

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if self.detailed_when(args):
            ctx.meta[DETAILED_EXIT] = True
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as error:
            if not ctx.meta.get(DETAILED_EXIT):
                raise
            # click types exit_code as a ClassVar, yet exits with the instance's: set on this one
            # error, it keeps the subclass's message (No such option ... Did you mean) as it is.
            error.exit_code = ERROR  # type: ignore[misc]
            raise


def exit_code_for(ctx: click.Context, error: EcohashError) -> int:
    """An error's exit status; under detailed exit codes, never 2 (invalid input becomes 1)."""
    return ERROR if ctx.meta.get(DETAILED_EXIT) and error.exit_code == CHANGES else error.exit_code


def site_argument(function: F) -> F:
    return click.argument("site", metavar="SITE")(function)


def load(site_argument_value: str) -> Site:
    """A SITE argument (name or path) to a validated site."""
    return load_site(resolve_site(site_argument_value))


def print_json(kind: str, data: dict[str, Any]) -> None:
    """Print a command's output as its JSON kind (ecohash/schemas/KIND.json), stamped."""
    click.get_current_context().meta[JSON_PRINTED] = True
    click.echo(dumps_indented(stamped(kind, data)))


def echo_json_error(ctx: click.Context, error: Exception, exit_code: int) -> None:
    """With --json, the error object on stdout, unless the command already printed its output."""
    if ctx.meta.get(JSON_WANTED) and not ctx.meta.get(JSON_PRINTED):
        click.echo(dumps_indented(error_data(error, exit_code)))


def usage_error_wants_json(ctx: click.Context, error: click.UsageError, arguments: list[str]) -> bool:
    """Whether `arguments`, as typed, gave --json to the command that `error` stopped.

    click's parser stops at an unknown option or a missing value before it reads any
    option, --json included, yet a script that passed --json still reads stdout for the
    error object. Only a command that has --json counts: given to one without it, --json
    is itself the usage error, and such a command has no JSON contract to keep.
    """
    failed = error.ctx.command if error.ctx is not None else ctx.meta.get(JSON_COMMAND_PARSING)
    if failed is None or not any(isinstance(parameter, _JsonOption) for parameter in failed.params):
        return False
    # Past "--" every argument is an operand, even one spelled --json.
    options = arguments[:arguments.index("--")] if "--" in arguments else arguments
    return JSON_FLAG in options


def echo_error(error: Exception) -> None:
    """Print an error to stderr, one line per problem, prefixing lines that carry no FILE:LINE."""
    for line in str(error).splitlines() or [type(error).__name__]:
        click.echo(line if _has_location(line) else f"ecohash: {line}", err=True)


def _has_location(line: str) -> bool:
    head = line.split(": ", 1)[0]
    return ":" in head and head.split(":")[1].isdigit()


# How wide tables are off a terminal (pipes, CI logs): wide enough not to wrap them.
WIDTH_WITHOUT_TERMINAL = 140


def console(stderr: bool = False) -> Any:
    """A rich console; off a terminal (pipes, CI logs) it is wide enough not to wrap tables."""
    import shutil

    from rich.console import Console

    return Console(width=shutil.get_terminal_size((WIDTH_WITHOUT_TERMINAL, 24)).columns, stderr=stderr)


class RenamedOption(click.Option):
    """An option whose old names still work but are no longer shown: `--help` and errors
    name only the current one, so old scripts run while new readers learn one name."""

    def __init__(self, *args: Any, old_names: tuple[str, ...] = (), **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.old_names = old_names

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        with self._without_old_names():
            return super().get_help_record(ctx)

    def get_error_hint(self, ctx: click.Context | None) -> str:
        with self._without_old_names():
            return super().get_error_hint(ctx)

    @contextmanager
    def _without_old_names(self) -> Iterator[None]:
        every = self.opts
        self.opts = [name for name in every if name not in self.old_names]
        try:
            yield
        finally:
            self.opts = every


def renamed_option(name: str, *old_names: str, dest: str, **kwargs: Any) -> Callable[[F], F]:
    """`name`, also accepted as the hidden `old_names`; all set the parameter `dest`."""
    return click.option(name, *old_names, dest, cls=RenamedOption, old_names=old_names, **kwargs)


shards_option = click.option(
    "--shards", type=click.IntRange(min=1), metavar="S",
    help="Ansible jobs per wave, run at once over disjoint slices of its nodes; default: one per "
         f"controller core, at least {MIN_NODES_PER_SHARD} nodes each (1 on small sites).")


def batch_option_value(_context: click.Context, _parameter: click.Parameter, value: str | None
           ) -> int | str | None:
    # The site file's rule for rollout.serial, so the flag and the file accept the same.
    if value is None:
        return None
    try:
        return parse_batch(value)
    except PydanticCustomError:
        raise click.BadParameter("a number of nodes (e.g. 5) or a percentage (e.g. 10%)") from None
