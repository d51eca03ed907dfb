"""How many like things are shown to a person: the one rule every command's text and HTML follow.

A site has thousands of nodes and dozens of identical racks; a list of them all is
unreadable in a terminal and hides the one that differs. Up to FULL_UP_TO nodes every
name is shown; past it, one line per container with its counts by state and its first
few names, and the way to see them all (`--all`, or `--json`, whose output is always
complete). Runs of like things (racks that differ only in name) are shown as a range
with a count.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# Past this many nodes, a list is summarised per container.
FULL_UP_TO = 50
# Names shown of each container's nodes in a summary: enough to recognise them by.
FIRST_NAMES = 3
SEE_ALL = "--all or --json lists every one"


def name_range(noun: str, names: Sequence[str]) -> str:
    """'rack c01/r01', or '12 racks c01/r01..c01/r12' for a run of like things in their order."""
    if len(names) == 1:
        return f"{noun} {names[0]}"
    return f"{len(names)} {noun}s {names[0]}..{names[-1]}"


def summarised(count: int, show_all: bool) -> bool:
    """Whether a list of `count` nodes is shown per container rather than name by name."""
    return not show_all and count > FULL_UP_TO


@dataclass
class ContainerSummary:
    """One container's nodes of a long list: how many in each state, and the first few names."""

    container: str
    states: Counter[str] = field(default_factory=Counter)
    first: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.states.values())

    def counts_text(self) -> str:
        """'120 ok, 80 unreachable' (states by count, most first), or '200' with one unnamed state."""
        if list(self.states) == [""]:
            return f"{self.total}"
        return ", ".join(f"{count} {state}" for state, count in self.states.most_common())

    def names_text(self) -> str:
        more = self.total - len(self.first)
        return ", ".join(self.first) + (f", … {more} more" if more else "")

    def line(self) -> str:
        """'c01: 120 ok, 80 unreachable: c01-r01-n01, c01-r01-n02, c01-r01-n03, … 197 more'."""
        return f"{self.container}: {self.counts_text()}: {self.names_text()}"


def by_container(nodes: Iterable[tuple[str, str, str]]) -> list[ContainerSummary]:
    """(name, container, state) of each node, as one summary per container in first-seen order."""
    summaries: dict[str, ContainerSummary] = {}
    for name, container, state in nodes:
        summary = summaries.setdefault(container, ContainerSummary(container))
        summary.states[state] += 1
        if len(summary.first) < FIRST_NAMES:
            summary.first.append(name)
    return list(summaries.values())


def problem_lines(nodes: Sequence[tuple[str, str, str]], show_all: bool = False) -> list[str]:
    """(name, container, problem) of each node as lines: 'name: problem' each, or past
    FULL_UP_TO a line per container counting them by problem, then how to see them all."""
    if not summarised(len(nodes), show_all):
        return [f"{name}: {problem}" for name, _, problem in nodes]
    return [summary.line() for summary in by_container(nodes)] + [f"({len(nodes):,} nodes; {SEE_ALL})"]


def names_line(nodes: Sequence[tuple[str, str]], show_all: bool = False) -> str:
    """(name, container) of each node as one line: every name, or past FULL_UP_TO per container.

    '408 nodes; c01: 204: c01-r01-n01, …; c02: …  (--all or --json lists every one)'.
    """
    if not summarised(len(nodes), show_all):
        return ", ".join(name for name, _ in nodes)
    parts = "; ".join(summary.line() for summary in by_container((name, container, "")
                                                                  for name, container in nodes))
    return f"{len(nodes)} nodes; {parts} ({SEE_ALL})"
