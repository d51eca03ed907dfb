"""The command reference in docs/cli.md: every command's own `--help`, from the root group down.

docs/cli.md holds a cog block that calls `markdown`; scripts/gen-docs regenerates it and
tests/test_docs.py fails while it is stale, so the reference cannot fall behind the help.
"""

from __future__ import annotations

from collections.abc import Iterator

import click

# Click wraps help to the terminal it finds; a fixed width makes the page the same on every
# machine. 100 is the commands' own max_content_width, the widest help they print.
WIDTH = 100
# The contents list gives each command's first sentence whole, where `ecohash -h` cuts it to
# fit a terminal line.
SUMMARY_LIMIT = 300


def contexts(command: click.Command, ctx: click.Context) -> Iterator[click.Context]:
    """`ctx` and a context for every visible command below it, in each group's listing order."""
    yield ctx
    if not isinstance(command, click.Group):
        return
    for name in command.list_commands(ctx):
        sub = command.get_command(ctx, name)
        if sub is None or sub.hidden:
            continue
        # A context built, not parsed: no argument is required and no callback runs.
        yield from contexts(sub, click.Context(sub, info_name=name, parent=ctx, **sub.context_settings))


def markdown(root: click.Group, name: str) -> str:
    """A contents list, then a section per command holding its help as `NAME ... --help` prints it."""
    top = click.Context(root, info_name=name, terminal_width=WIDTH, **root.context_settings)
    found = list(contexts(root, top))
    # Subcommands indented under their group, so the list reads as the tree it is.
    contents = [f"{'  ' * (depth(ctx) - 1)}- [`{ctx.command_path}`](#{anchor(ctx.command_path)}): "
                f"{ctx.command.get_short_help_str(limit=SUMMARY_LIMIT)}" for ctx in found[1:]]
    sections = [f"{'#' * (1 + max(1, depth(ctx)))} `{ctx.command_path}`\n\n```text\n{ctx.get_help()}\n```"
                for ctx in found]
    return "\n".join(contents) + "\n\n" + "\n\n".join(sections) + "\n"


def depth(ctx: click.Context) -> int:
    """0 for the root, 1 for its commands, 2 for a group's subcommands."""
    return ctx.command_path.count(" ")


def anchor(command_path: str) -> str:
    """The id GitHub gives the heading `` `command path` ``: lower case, spaces as hyphens."""
    return command_path.lower().replace(" ", "-")
