"""ecohash's HTML pages: one Jinja environment, one base template, and what every page says
about itself.

Every page (the provision report, the curtailment report, the fleet summary) extends
templates/page.html.j2, which holds the shared style and a footer saying when (UTC, ISO
8601) and where (host, ecohash version, the command and site) the page was made: a page
is mailed round and opened days later, away from the run that wrote it. Each page's
renderer adds its own filters to a copy of the environment (`page_environment`).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

import ecohash
from ecohash.paths import project_root
from ecohash.timestamps import utc_time

BASE_TEMPLATE = "page.html.j2"


@dataclass(frozen=True)
class Made:
    """When, where and by what a page was made, for its footer."""

    at: str  # ISO 8601, UTC, to the second
    host: str
    version: str
    what: str  # the command and site: 'ecohash provision tx-odessa'

    def text(self) -> str:
        return f"Made {self.at} on {self.host} by ecohash {self.version}: {self.what}"


def made_now(what: str) -> Made:
    """Provenance for a page made now on this machine."""
    return Made(at=utc_time(), host=socket.gethostname(), version=ecohash.__version__, what=what)


def number(value: float | None, digits: int = 3) -> str:
    """'1,234.500' with `digits` decimals and thousands separators; '-' when there is no figure."""
    return "-" if value is None else f"{value:,.{digits}f}"


def page_environment() -> Environment:
    """Jinja for ecohash's pages (templates/): escaped, strict, compact, with the shared filters."""
    environment = Environment(
        loader=FileSystemLoader(project_root() / "templates"),
        autoescape=select_autoescape(enabled_extensions=("html", "j2"), default=True),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        # Block tags on their own lines leave no blank lines: a page of thousands of rows stays compact.
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["number"] = number
    return environment
