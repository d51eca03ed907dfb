"""The exceptions ecohash raises for problems a user can fix.

Library code raises these and never prints or exits; the CLI turns them into a
message on stderr and an exit status (2 for invalid input, 1 for anything else).
"""

from __future__ import annotations

from dataclasses import dataclass


class EcohashError(Exception):
    """Base class for every error ecohash reports to a user without a traceback."""

    exit_code = 1


class InvalidInputError(EcohashError):
    """The user's input (a site file, an option) is wrong; exit status 2."""

    exit_code = 2


@dataclass(frozen=True, order=True)
class Problem:
    """One problem in a file, reported as FILE:LINE: message."""

    file: str
    line: int
    message: str
    column: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        if self.column is not None:
            where += f":{self.column}"
        return f"{where}: {self.message}"


class ProblemsError(InvalidInputError):
    """One or more problems found in input files, every one reported at once."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.message))
        super().__init__("\n".join(str(p) for p in self.problems))


class InventoryError(ProblemsError):
    """A site inventory is not valid: syntax, keys, types, ranges or references."""


class InfeasibleSiteError(ProblemsError):
    """The site's planned nodes cannot run inside its power and cooling budgets."""


class SiteNotFoundError(InvalidInputError):
    """A site argument names neither a site file nor a site in the inventories."""


class ContentNotFoundError(InvalidInputError):
    """ecohash's Ansible content (roles, playbooks, templates...) is missing from its install."""
