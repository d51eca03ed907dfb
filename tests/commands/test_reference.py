"""The command reference: every visible command's help, in each group's listing order."""

import re

import click

from ecohash.commands.main import cli
from ecohash.commands.reference import markdown


class ListedAsAdded(click.Group):
    """A group that lists its commands as they were added, not alphabetically as Click does."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


def headings(text: str) -> list[str]:
    return re.findall(r"^#+ `(.+)`$", text, re.M)


def test_commands_follow_their_groups_listing_order_and_hidden_ones_stay_out():
    root, group = ListedAsAdded("tool"), ListedAsAdded("zeta", help="Zeta things.")
    group.add_command(click.Command("second", help="Second."))
    group.add_command(click.Command("first", help="First."))
    root.add_command(group)
    root.add_command(click.Command("alpha", help="Alpha."))
    root.add_command(click.Command("old", help="The old spelling.", hidden=True))
    text = markdown(root, "tool")
    assert headings(text) == ["tool", "tool zeta", "tool zeta second", "tool zeta first", "tool alpha"]
    assert "  - [`tool zeta second`](#tool-zeta-second): Second." in text.splitlines()
    assert "old" not in text


def test_each_section_is_the_commands_own_help_under_its_full_path():
    text = markdown(cli, "ecohash")
    assert "Usage: ecohash bundle build [OPTIONS]" in text
    assert headings(text)[0] == "ecohash"
    # A required argument does not stop a command's section from being made.
    assert "## `ecohash plan`\n\n```text\nUsage: ecohash plan [OPTIONS] SITE" in text


def test_the_page_does_not_depend_on_the_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    narrow = markdown(cli, "ecohash")
    monkeypatch.setenv("COLUMNS", "300")
    assert markdown(cli, "ecohash") == narrow
