"""Rollout state: per site, what each node was last provisioned to and whether it passed.

One JSON file per site (<state dir>/rollouts/<site>/state.json), rewritten whole and
atomically after every wave, so an interrupted run keeps every wave it finished. A
node's record is replaced only by a newer result for that node; the last passing
result is kept beside a later failure, so nothing recorded is ever lost. The file
holds fingerprints, verdicts and reasons, never a secret.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NotRequired

from pydantic import ConfigDict, TypeAdapter, ValidationError

# pydantic reads TypedDicts from typing_extensions only, before Python 3.12.
from typing_extensions import TypedDict

from ecohash.atomic import write_atomic
from ecohash.errors import EcohashError, InvalidInputError
from ecohash.paths import state_dir

STATE_SCHEMA = 1
# Node verdicts a rollout records. "skipped" and "not-run" are a run's words, not state.
PASSED, FAILED, UNREACHABLE, INTERRUPTED = "passed", "failed", "unreachable", "interrupted"
RUNS_KEPT = 100


@dataclass
class NodeRecord:
    # A key this ecohash does not know means a file it did not write: refused, never dropped.
    __pydantic_config__ = ConfigDict(extra="forbid")

    fingerprint: str
    components: dict[str, str]
    status: str
    reason: str | None
    cap_w: int | None
    time: str
    run: str
    duration_s: float | None = None
    # The last run this node passed in, kept when a later run fails it.
    last_passed: dict[str, str] | None = None
    # The inventory variables the node was provisioned with: its own, and a reference to
    # the site-wide set in RolloutState.site_vars, so `ecohash plan` can name what changed.
    vars: dict[str, Any] | None = None
    site_vars: str | None = None


class StackRecord(TypedDict):
    """The site stack as a rollout left it (changes.record_stack writes it)."""

    action: str  # "applied" or "rendered"
    reason: str | None
    run: str
    time: str
    objects: dict[str, str]  # file name -> sha256 of its YAML


class _StateFile(TypedDict):
    """state.json's shape, checked whole on load so a damaged or foreign file is named, not a traceback."""

    schema: int
    site: str
    nodes: dict[str, NodeRecord]
    # Added after schema 1 was first written: older files lack them.
    runs: NotRequired[list[dict[str, Any]]]
    site_vars: NotRequired[dict[str, dict[str, Any]]]
    stack: NotRequired[StackRecord | None]


_STATE_FILE = TypeAdapter(_StateFile)


@dataclass
class RolloutState:
    site: str
    nodes: dict[str, NodeRecord] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    # Site-wide variable sets by digest: every node of a run shares one.
    site_vars: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The site stack as the last rollout left it: applied or only rendered, when, by which
    # run, and each object's digest (the objects themselves are in stack_dir).
    stack: StackRecord | None = None

    @staticmethod
    def file_for(site_name: str) -> Path:
        return state_dir() / "rollouts" / site_name / "state.json"

    @staticmethod
    def stack_dir_for(site_name: str) -> Path:
        """The last rollout's render of the site stack, one file per object."""
        return state_dir() / "rollouts" / site_name / "stack"

    @classmethod
    def load(cls, site_name: str) -> RolloutState:
        path = cls.file_for(site_name)
        try:
            text = path.read_bytes()
        except FileNotFoundError:
            return cls(site_name)
        except OSError as error:
            raise EcohashError(f"{path}: unreadable rollout state ({error.strerror or error})") from error
        try:
            # Strict, and from JSON: a dataclass field takes a JSON object, never a string for a number.
            raw = _STATE_FILE.validate_json(text, strict=True)
        except ValidationError as error:
            raise InvalidInputError(_not_a_state(path, text, error)) from None
        if raw["schema"] != STATE_SCHEMA:
            raise InvalidInputError(_schema_refusal(path, raw["schema"]))
        if raw["site"] != site_name:
            raise InvalidInputError(f"{path}: the rollout state of site {raw['site']!r}, "
                                    f"not of site {site_name!r}")
        return cls(site_name, raw["nodes"], raw.get("runs", []), raw.get("site_vars", {}), raw.get("stack"))

    def is_current(self, node: str, fingerprint: str) -> bool:
        """The node passed at exactly this fingerprint: nothing to do unless forced.

        The one rule for "current": provision skips by it, plan and status report by it.
        """
        record = self.nodes.get(node)
        return record is not None and record.status == PASSED and record.fingerprint == fingerprint

    def record(self, node: str, result: NodeRecord) -> None:
        previous = self.nodes.get(node)
        if result.status == PASSED:
            result.last_passed = {"fingerprint": result.fingerprint, "time": result.time,
                                  "run": result.run}
        elif previous is not None:
            result.last_passed = previous.last_passed
        self.nodes[node] = result

    def forget(self, names: set[str]) -> None:
        """Drop the records of nodes the site no longer has."""
        for name in names:
            self.nodes.pop(name, None)

    def record_run(self, summary: dict[str, Any]) -> None:
        """Add or update (by run id) a run's line in the history."""
        self.runs = [run for run in self.runs if run.get("run") != summary.get("run")]
        self.runs.append(summary)
        del self.runs[:-RUNS_KEPT]

    def save(self) -> None:
        referenced = {record.site_vars for record in self.nodes.values()}
        data = {
            "schema": STATE_SCHEMA,
            "site": self.site,
            "nodes": {name: asdict(self.nodes[name]) for name in sorted(self.nodes)},
            "runs": self.runs,
            # Only the sets some node still refers to.
            "site_vars": {digest: self.site_vars[digest] for digest in sorted(self.site_vars)
                          if digest in referenced},
            "stack": self.stack,
        }
        write_atomic(self.file_for(self.site), json.dumps(data, indent=1) + "\n")


def _schema_refusal(path: Path, schema: object) -> str:
    return f"{path}: rollout state schema {schema!r}; this ecohash reads schema {STATE_SCHEMA}"


def _not_a_state(path: Path, text: bytes, error: ValidationError) -> str:
    """What is wrong with a state file that failed its check, in one line naming it."""
    try:
        raw = json.loads(text)
    except UnicodeDecodeError:
        return f"{path}: not a rollout state: not UTF-8 text"
    except json.JSONDecodeError as invalid:
        return (f"{path}:{invalid.lineno}: not a rollout state: "
                f"invalid JSON ({invalid.msg}, column {invalid.colno})")
    if isinstance(raw, dict) and "schema" in raw and raw["schema"] != STATE_SCHEMA:
        return _schema_refusal(path, raw["schema"])  # another version's shape: its version is the news
    problems = error.errors(include_url=False)
    first = problems[0]
    where = ".".join(str(part) for part in first["loc"])
    message = first["msg"][0].lower() + first["msg"][1:]
    if first["type"] != "missing":
        message += f" (got {_short(first['input'])})"
    more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
    return f"{path}: not a rollout state: {where + ': ' if where else ''}{message}{more}"


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
