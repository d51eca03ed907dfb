"""Another program's words quoted in a one-line reason: what a node, ssh or a script said.

A reason is one line whatever it quotes (a user name, a command's output, a library's
message), so that a summary of many nodes stays one line per node.
"""

from __future__ import annotations


def first_line(text: str) -> str:
    """The first line of `text` that is not blank, stripped; "" when there is none."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def one_line(text: str) -> str:
    """`text` with every run of whitespace, line breaks included, as one space."""
    return " ".join(text.split())
