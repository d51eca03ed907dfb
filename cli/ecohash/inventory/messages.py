"""Turning pydantic's validation errors into short messages a site author can act on."""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Sequence
from decimal import Decimal
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

Loc = tuple[str | int, ...]


# A key a person can read in a dotted path as it is; any other is quoted, so that a key
# holding a newline or a quote still makes one readable line.
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.-]+")
# Where pydantic puts an error about a mapping's key rather than its value.
_KEY_STEP = "[key]"


def dotted(loc: Sequence[str | int]) -> str:
    """spec.containers[0].racks[1]: the path a person reads."""
    text = ""
    for step in loc:
        if isinstance(step, int) or not _PLAIN_KEY.fullmatch(step):
            text += f"[{step!r}]"
        else:
            text += f".{step}" if text else step
    return text


def describe(error: dict[str, Any], root: type[BaseModel]) -> tuple[Loc, bool, str]:
    """(path to point at, whether to point at the key, message) for one pydantic error."""
    loc: Loc = tuple(error["loc"])
    kind = error["type"]
    if kind == "missing":
        return loc[:-1], False, _at(loc[:-1], f"missing required key {loc[-1]!r}")
    if kind == "extra_forbidden":
        valid = fields_at(root, loc[:-1])
        return loc, True, _at(loc[:-1], f"unknown key {loc[-1]!r}{suggest(str(loc[-1]), valid)}")
    message = _reword(error["msg"])
    if loc and loc[-1] == _KEY_STEP:  # the path ends in the key: no need to show it again
        return loc[:-1], True, _at(loc[:-1], f"key {message}")
    value = error.get("input")
    if isinstance(value, str | int | float | Decimal | bool) and "got" not in message:
        message += f" (got {_show(value)})"
    return loc, False, _at(loc, message)


def suggest(word: str, valid: Sequence[str]) -> str:
    """'; did you mean X?' for the closest valid word, else the list of valid words."""
    if not valid:
        return ""
    close = difflib.get_close_matches(word, valid, n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    if len(valid) <= 12:
        return f"; valid: {', '.join(valid)}"
    return ""


def fields_at(root: type[BaseModel], loc: Loc) -> list[str]:
    """The keys a mapping at `loc` may hold, following the model's annotations."""
    annotation: Any = root
    for step in loc:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = _field_by_key(annotation, str(step))
            if field is None:
                return []
            annotation = field.annotation
        elif get_origin(annotation) is list:
            annotation = get_args(annotation)[0]
        elif get_origin(annotation) is dict:
            annotation = get_args(annotation)[1]
        else:
            return []
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [f.alias or name for name, f in annotation.model_fields.items()]
    return []


def _field_by_key(model: type[BaseModel], key: str) -> Any:
    for name, field in model.model_fields.items():
        if (field.alias or name) == key:
            return field
    return None


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            annotation = members[0]
        else:
            return annotation


_REWORDINGS = [
    (re.compile(r"^Input should be a valid dictionary( or instance of \w+)?"), "must be a mapping"),
    (re.compile(r"^Input should be a valid list"), "must be a list"),
    (re.compile(r"^Input should be a valid integer.*"), "must be a whole number"),
    (re.compile(r"^Input should be a valid string"), "must be a string"),
    (re.compile(r"^Input should be (a valid )?"), "must be "),
    (re.compile(r"^List should have at least (\d+) items?.*"), r"must have at least \1 item(s)"),
    (re.compile(r"^Value error, "), ""),
]


def _reword(message: str) -> str:
    for pattern, replacement in _REWORDINGS:
        message = pattern.sub(replacement, message)
    return message


def _show(value: object) -> str:
    text = str(value) if isinstance(value, Decimal) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _at(loc: Loc, message: str) -> str:
    return f"{dotted(loc)}: {message}" if loc else message
