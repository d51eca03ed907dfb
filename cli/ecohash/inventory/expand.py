"""Expanding node entries with `count` into the nodes they stand for."""

from __future__ import annotations

import re
from collections.abc import Iterator
from ipaddress import IPv4Address

# Only {i} and {i:0Nd}/{i:Nd}: a full str.format would let a site file reach
# attributes ({i.__class__}) and fail in ways no user could read.
_PLACEHOLDER = re.compile(r"\{i(?::(0?)(\d*)d)?\}")


class TemplateError(ValueError):
    """A `count` entry's name is not a usable template."""


def check_template(template: str) -> None:
    leftover = _PLACEHOLDER.sub("", template)
    if "{" in leftover or "}" in leftover:
        raise TemplateError(
            f"name {template!r}: the only placeholders allowed are {{i}} and {{i:02d}}-style"
        )
    if leftover == template:
        raise TemplateError(
            f"name {template!r} has count but no {{i}} placeholder (for example 'n{{i:02d}}')"
        )


def expand_name(template: str, i: int) -> str:
    def fill(match: re.Match[str]) -> str:
        zero, width = match.group(1), match.group(2)
        return f"{i:{zero or ''}{width or ''}d}"

    return _PLACEHOLDER.sub(fill, template)


def expand(template: str, first_ip: IPv4Address, count: int | None, start: int
           ) -> Iterator[tuple[str, IPv4Address]]:
    """(name, mgmt_ip) for each node an entry stands for.

    Raises TemplateError for a bad template and OverflowError when the IPs run past
    255.255.255.255.
    """
    if count is None:
        yield template, first_ip
        return
    check_template(template)
    if int(first_ip) + count - 1 > 0xFFFFFFFF:
        raise OverflowError
    base = int(first_ip)
    for offset in range(count):
        yield expand_name(template, start + offset), IPv4Address(base + offset)
