"""The one contract every `--json` output keeps (docs/json.md): a schema stamp, the error object.

Every output is one JSON object whose `schema` names its shape and version, as
"ecohash.<kind>/<version>"; the shape itself is published as a JSON Schema in
ecohash/schemas/<kind>.json, so a bot can check what it reads and a test can check
what ecohash prints. A version goes up whenever a key is renamed, removed or changes
meaning; adding a key does not bump it (the schemas allow additions where readers
should expect them).
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

from ecohash.errors import EcohashError, ProblemsError

# kind: version. Kinds whose shapes changed with the contract are at 2: fleet, provision
# and drift had a schema 1 of their own, and the others' keys were renamed to one name
# per concept. validate and the error object are new.
VERSIONS: dict[str, int] = {
    "plan": 2,
    "capacity": 2,
    "status": 2,
    "curtail-preview": 2,
    "curtail-status": 2,
    "curtail-outcome": 2,
    "drift": 2,
    "provision": 2,
    "fleet": 2,
    "lab-status": 2,
    "validate": 1,
    "error": 1,
}


def schema_id(kind: str) -> str:
    """The `schema` value of an output of this kind, e.g. "ecohash.plan/2"."""
    return f"ecohash.{kind}/{VERSIONS[kind]}"


def stamped(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """The output with its `schema` first; a `schema` the data carried (a report's file
    format version) is the file's, not the output's, and gives way."""
    return {"schema": schema_id(kind), **{key: value for key, value in data.items() if key != "schema"}}


def published_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) an output of this kind validates against."""
    text = files("ecohash").joinpath("schemas", f"{kind}.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def problem_data(file: str, line: int | None, message: str, column: int | None = None) -> dict[str, Any]:
    """One problem as validate and the error object list it; line is null where not known."""
    return {"file": file, "line": line, "column": column, "message": message}


def problems_of(error: Exception, where: str | None = None) -> list[dict[str, Any]]:
    """An error's problems with FILE:LINE where it knows them (an invalid or infeasible site);
    any other error is one problem at `where` (the file or argument it was about), or none."""
    if isinstance(error, ProblemsError):
        return [problem_data(p.file, p.line, p.message, p.column) for p in error.problems]
    return [problem_data(where, None, str(error))] if where is not None else []


def error_data(error: EcohashError | Exception, exit_code: int) -> dict[str, Any]:
    """The error object a failing command prints with --json, with the exit status it exits with."""
    message = getattr(error, "format_message", lambda: str(error))()
    return stamped("error", {"error": {"message": message or type(error).__name__, "exit_code": exit_code,
                                       "problems": problems_of(error)}})
