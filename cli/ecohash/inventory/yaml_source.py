"""Parsing site YAML so that numbers stay exact and every value can be traced to a line.

Floats are read from their decimal text into `Decimal`, so 12.5 MW is exactly 12.5 MW
and no binary rounding can flip a watt in the budget compiler. The composed node tree
is kept, and a line is looked up only when a problem is reported, which keeps the
common, valid path as fast as a plain parse with the C loader.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml

try:
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # libyaml missing: same behaviour, only slower
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

Path = tuple[str | int, ...]

_SPECIAL_FLOATS = {".inf": "Infinity", "+.inf": "Infinity", "-.inf": "-Infinity", ".nan": "NaN"}


@dataclass
class Parsed:
    """A parsed YAML document: its Python value, its node tree, and problems found on the way."""

    data: Any
    root: yaml.Node | None
    duplicate_keys: list[tuple[int, str]] = field(default_factory=list)

    def line_of(self, path: Sequence[str | int], *, key: bool = False) -> int:
        """The 1-based line of the value at `path`, or of its key when `key` is true.

        Falls back to the closest ancestor that exists, so a missing key points at the
        mapping that should hold it.
        """
        node = self.root
        if node is None:
            return 1
        line = node.start_mark.line + 1
        last = len(path) - 1
        for index, step in enumerate(path):
            child_key, child = _child(node, step)
            if child is None:
                break
            if key and index == last and child_key is not None:
                return child_key.start_mark.line + 1
            node = child
            line = node.start_mark.line + 1
        return line


def _child(node: yaml.Node, step: str | int) -> tuple[yaml.Node | None, yaml.Node | None]:
    if isinstance(node, yaml.MappingNode) and isinstance(step, str):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == step:
                return key_node, value_node
    if isinstance(node, yaml.SequenceNode) and isinstance(step, int) and 0 <= step < len(node.value):
        return None, node.value[step]
    return None, None


class _ExactLoader(_BaseLoader):
    """The safe loader with exact decimals and duplicate-key detection."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self.duplicate_keys: list[tuple[int, str]] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag.endswith(":str"):
                if key_node.value in seen:
                    self.duplicate_keys.append((key_node.start_mark.line + 1, key_node.value))
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


def _construct_decimal(loader: yaml.BaseLoader, node: yaml.ScalarNode) -> Decimal:
    text = loader.construct_scalar(node).replace("_", "").lower()
    try:
        return Decimal(_SPECIAL_FLOATS.get(text, text))
    except InvalidOperation:  # YAML 1.1 sexagesimal such as 1:30.5; nobody means that here
        return Decimal("NaN")


_ExactLoader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)


@dataclass(frozen=True)
class SyntaxProblem:
    """A YAML syntax error with its 1-based line and column."""

    line: int
    column: int
    message: str


class YamlSyntaxError(Exception):
    """The text is not well-formed YAML."""

    def __init__(self, problem: SyntaxProblem):
        super().__init__(problem.message)
        self.problem = problem


def decode(data: bytes) -> str:
    """A file's bytes as UTF-8 text; raise YamlSyntaxError at the first byte that is not."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line_start = data.rfind(b"\n", 0, error.start) + 1
        # Everything before the bad byte decoded, so the column counts characters, not bytes.
        column = len(data[line_start:error.start].decode("utf-8")) + 1
        line = data.count(b"\n", 0, error.start) + 1
        raise YamlSyntaxError(SyntaxProblem(line, column, f"not UTF-8 text ({error.reason})")) from None


def parse(text: str) -> Parsed:
    """Parse one YAML document exactly; raise YamlSyntaxError with line and column."""
    loader = _ExactLoader(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as error:
        raise YamlSyntaxError(_syntax_problem(error)) from None
    except yaml.YAMLError as error:  # reader errors: control characters, bad encoding
        position = getattr(error, "position", 0) or 0
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        message = re.sub(r"\s+", " ", str(error))
        raise YamlSyntaxError(SyntaxProblem(line, column, f"YAML error: {message}")) from None
    finally:
        loader.dispose()
    return Parsed(data=data, root=root, duplicate_keys=loader.duplicate_keys)


def _syntax_problem(error: yaml.MarkedYAMLError) -> SyntaxProblem:
    mark = error.problem_mark or error.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    parts = [p for p in (error.context, error.problem) if p]
    message = re.sub(r"\s+", " ", "; ".join(parts)) or "invalid YAML"
    return SyntaxProblem(line, column, f"YAML syntax error: {message}")
