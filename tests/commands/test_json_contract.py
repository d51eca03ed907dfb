"""The JSON contract (docs/json.md): every command with --json prints one object that its
published schema (ecohash/schemas/KIND.json) accepts, and fails with the error object.

A command given --json without a sample here fails the first test: a new command's JSON
cannot ship without a schema and a run that checks its output against it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

import click
import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from ecohash.commands.main import cli
from ecohash.json_contract import VERSIONS, published_schema, schema_id
from tests.conftest import REPO

TX = str(REPO / "inventories" / "tx-odessa" / "site.yaml")
WILLISTON = str(REPO / "inventories" / "nd-williston" / "site.yaml")
# A slice of tx-odessa's GPU nodes, for the commands that contact nodes (faked here).
FEW_NODES = "c01-r01-n0*"


@dataclass(frozen=True)
class Sample:
    """One run of a command with --json, and the kind of object it must print."""

    kind: str
    args: tuple[str, ...]
    # What the run needs in place of hosts: a fixture's name (below), or none.
    needs: str | None = None
    exit_code: int = 0


# Every command (by its path under `ecohash`) that has --json, with the runs that cover
# each kind of object it prints.
SAMPLES: dict[tuple[str, ...], list[Sample]] = {
    ("validate",): [Sample("validate", ("validate", TX, WILLISTON, "--json"))],
    ("plan",): [Sample("plan", ("plan", TX, "--json")),
                Sample("plan", ("plan", TX, "--json"), needs="recorded_rollout")],
    ("capacity",): [Sample("capacity", ("capacity", TX, "--sku", "hgx-h100-8", "--cap", "550", "--json"))],
    ("status",): [Sample("status", ("status", TX, "--json"), needs="recorded_rollout")],
    ("curtail", "start"): [
        Sample("curtail-preview", ("curtail", "start", TX, "--program", "ers-10", "--dry-run", "--json")),
        Sample("curtail-outcome", ("curtail", "start", TX, "--program", "4cp", "--for", "2h", "--settle", "5s",
                                   "--json"), needs="simulated_nodes"),
    ],
    ("curtail", "status"): [
        Sample("curtail-status", ("curtail", "status", TX, "--json"), needs="curtailment_in_force"),
    ],
    ("curtail", "release"): [
        Sample("curtail-outcome", ("curtail", "release", TX, "--json"), needs="curtailment_in_force"),
    ],
    ("provision",): [Sample("provision", ("provision", TX, "--dry-run", "--here", "--limit", FEW_NODES, "--json"),
                            needs="reachable_nodes")],
    # Exit 2, drift: the stack was never rolled out from here. Drift is an outcome, not an
    # error: the report, not the error object.
    ("drift",): [Sample("drift", ("drift", TX, "--here", "--limit", FEW_NODES, "--json"), needs="checked_nodes",
                        exit_code=2)],
    ("fleet",): [Sample("fleet", ("fleet", "--json"))],
    ("lab", "status"): [Sample("lab-status", ("lab", "status", "--json"), needs="lab_allowed")],
}


def json_commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from json_commands(command, (*path, name))
        elif any("--json" in parameter.opts for parameter in command.params):
            yield (*path, name)


def test_every_command_with_json_has_a_schema_and_a_sample() -> None:
    commands = set(json_commands(cli))
    assert commands - SAMPLES.keys() == set(), "add a Sample (and its schema) for these commands"
    assert SAMPLES.keys() - commands == set(), "these samples name commands without --json"
    kinds = {sample.kind for samples in SAMPLES.values() for sample in samples}
    assert kinds | {"error"} == VERSIONS.keys()


def test_every_schema_file_is_draft_2020_12_and_stamps_its_version() -> None:
    for kind in VERSIONS:
        schema = published_schema(kind)
        Draft202012Validator.check_schema(schema)
        assert schema["properties"]["schema"] == {"const": schema_id(kind)}


@pytest.fixture(autouse=True)
def state(tmp_path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ECOHASH_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def conforms(stdout: str, kind: str) -> dict[str, Any]:
    """stdout as one JSON object its kind's schema accepts, every error listed on failure."""
    data = json.loads(stdout)
    validator = Draft202012Validator(published_schema(kind), registry=_registry())
    errors = [f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
              for error in validator.iter_errors(data)]
    assert errors == []
    assert data["schema"] == schema_id(kind)
    return data


def _registry() -> Registry:
    """Every published schema under its $id, so that their $refs to common.json resolve."""
    resources = [Resource.from_contents(json.loads(path.read_text("utf-8")))
                 for path in files("ecohash").joinpath("schemas").iterdir() if path.name.endswith(".json")]
    return Registry().with_resources((resource.id(), resource) for resource in resources)


# --- what the samples need in place of hosts ---------------------------------------------------


def recorded_rollout(monkeypatch: pytest.MonkeyPatch) -> None:
    from ecohash.inventory import load_site
    from tests.rollout.recorded import record_rollout

    record_rollout(load_site(TX))


def simulated_nodes(monkeypatch: pytest.MonkeyPatch) -> Any:
    from ecohash.budget import compile_budget
    from ecohash.grid import actuate
    from ecohash.inventory import load_site
    from tests.grid.simnodes import SimulatedNodes

    nodes = SimulatedNodes.of(compile_budget(load_site(TX)))
    monkeypatch.setattr(actuate, "ssh_link", lambda site, names, timeout_s=10: nodes)
    return nodes


def curtailment_in_force(monkeypatch: pytest.MonkeyPatch) -> None:
    """An event without a program, so that a release restores at once (a program's ramps for minutes)."""
    simulated_nodes(monkeypatch)
    assert invoke("curtail", "start", TX, "--by", "10%", "--settle", "2s").exit_code == 0


def reachable_nodes(monkeypatch: pytest.MonkeyPatch, except_: str | None = None) -> None:
    from ecohash.rollout import preflight

    def probe_all(targets: list[preflight.Target], **_: Any) -> dict[str, preflight.ProbeResult]:
        return {t.name: preflight.ProbeResult(t.name, t.name != except_, None if t.name != except_ else "timed out",
                                              "/usr/bin/python3", 0.1) for t in targets}

    monkeypatch.setattr(preflight, "probe_all", probe_all)


def checked_nodes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A check run in which every node ran its play and would change nothing."""
    from ecohash.ansible.runner import HostProgress, RunResult
    from ecohash.rollout import drift

    def run_sharded(run: Any, *_: Any, **__: Any) -> RunResult:
        return RunResult(rc=0, status="successful", directory=run.directory, stats={},
                         hosts={name: HostProgress(name, ran_node_play=True) for name in run.hosts})

    monkeypatch.setattr(drift, "run_sharded", run_sharded)


def lab_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lab status without root: a state directory with no lab in it."""
    from ecohash.lab import lifecycle

    monkeypatch.setattr(lifecycle, "check_can_run", lambda: None)


NEEDS: dict[str, Callable[[pytest.MonkeyPatch], Any]] = {
    need.__name__: need for need in (recorded_rollout, simulated_nodes, curtailment_in_force, reachable_nodes,
                                     checked_nodes, lab_allowed)}


@pytest.mark.parametrize("sample", [sample for samples in SAMPLES.values() for sample in samples],
                         ids=lambda sample: " ".join(a for a in sample.args if "/" not in a))
def test_each_sample_prints_what_its_schema_says(sample: Sample, monkeypatch: pytest.MonkeyPatch) -> None:
    if sample.needs is not None:
        NEEDS[sample.needs](monkeypatch)
    result = invoke(*sample.args)
    assert result.exit_code == sample.exit_code, result.stderr
    conforms(result.stdout, sample.kind)


# --- failures -----------------------------------------------------------------------------------


def test_an_invalid_site_is_the_error_object_with_file_and_line_and_exit_2(write_site) -> None:
    site = write_site()
    site.write_text(site.read_text().replace("pue:", "pue: -1 #", 1))
    for before, after in ((("plan",), ()), (("status",), ()), (("capacity",), ("--sku", "hgx-h100-8")),
                          (("curtail", "start"), ("--to", "1", "--dry-run"))):
        command = (*before, str(site), *after)
        result = invoke(*command, "--json")
        assert result.exit_code == 2, command
        error = conforms(result.stdout, "error")["error"]
        assert error["exit_code"] == 2
        assert [(p["file"], p["line"] is not None) for p in error["problems"]] == [(str(site), True)]
        assert error["message"] in result.stderr


def test_a_site_that_is_not_found_is_the_error_object_without_problems() -> None:
    result = invoke("plan", "no-such-site", "--json")
    assert result.exit_code == 2
    error = conforms(result.stdout, "error")["error"]
    assert error["problems"] == [] and "no-such-site" in error["message"]


def test_an_infeasible_plan_prints_the_error_object_naming_each_domain(write_site) -> None:
    site = write_site()
    text = site.read_text()
    site.write_text(text.replace("power_kw:", "power_kw: 1 #", 1))
    result = invoke("plan", str(site), "--json")
    assert result.exit_code == 2
    error = conforms(result.stdout, "error")["error"]
    assert error["problems"] and all(p["file"] == str(site) for p in error["problems"])


def test_a_bad_option_value_with_json_is_the_error_object_with_click_s_status() -> None:
    result = invoke("provision", TX, "--wave-size", "many", "--json")
    assert result.exit_code == 2
    assert "--wave-size" in conforms(result.stdout, "error")["error"]["message"]


# Usage errors click's parser raises before any option is read, --json included (and, for
# the missing argument and the value click cannot convert, after): each, wherever --json
# stands, is the error object on stdout with click's exit status and message.
USAGE_ERRORS = {
    "unknown option": (("plan", "--json", "--no-such-option", TX), "--no-such-option"),
    "unknown option before --json": (("plan", TX, "--no-such-option", "--json"), "--no-such-option"),
    "missing argument": (("plan", "--json"), "SITE"),
    "missing argument of a subcommand": (("curtail", "status", "--json"), "SITE"),
    "value click cannot convert": (("capacity", TX, "--sku", "hgx-h100-8", "--cap", "many", "--json"), "--cap"),
    "option missing its value": (("provision", TX, "--json", "--wave-size"), "--wave-size"),
    "flag given a value": (("status", TX, "--json", "--all=yes"), "--all"),
}


@pytest.mark.parametrize("args, named", USAGE_ERRORS.values(), ids=USAGE_ERRORS.keys())
def test_a_usage_error_with_json_is_the_error_object_with_click_s_status(args: tuple[str, ...],
                                                                         named: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2
    error = conforms(result.stdout, "error")["error"]
    assert error["exit_code"] == result.exit_code
    assert named in error["message"]
    assert f"Error: {error['message']}" in result.stderr


def test_a_usage_error_under_detailed_exit_codes_is_the_error_object_with_status_1() -> None:
    result = invoke("plan", TX, "--detailed-exitcode", "--json", "--no-such-option")
    assert result.exit_code == 1
    assert conforms(result.stdout, "error")["error"]["exit_code"] == 1


@pytest.mark.parametrize("args", [
    ("plan", "--no-such-option", TX),
    ("plan", "--no-such-option", "--", "--json"),  # past "--", an operand named --json
    ("lab", "--json", "status"),  # the group has no --json: it is the unknown option
    ("apply", TX, "--json"),  # a command without --json
], ids=["without --json", "--json after --", "--json given to the group", "command without --json"])
def test_a_usage_error_without_a_json_option_given_prints_nothing_on_stdout(args: tuple[str, ...]) -> None:
    result = invoke(*args)
    assert (result.exit_code, result.stdout) == (2, "")
    assert "Error: " in result.stderr


def test_a_failure_after_the_output_adds_no_second_object(monkeypatch: pytest.MonkeyPatch) -> None:
    reachable_nodes(monkeypatch, except_="c01-r01-n01")
    result = invoke("provision", TX, "--dry-run", "--here", "--limit", FEW_NODES, "--json")
    assert result.exit_code == 1
    # One object, the report (json.loads refuses a second one after it), naming the node.
    report = conforms(result.stdout, "provision")
    assert [failed["name"] for failed in report["failed"]] == ["c01-r01-n01"]
    assert "c01-r01-n01" in result.stderr


def test_every_schema_file_is_a_kind_s_or_the_shared_definitions() -> None:
    names = {path.name for path in files("ecohash").joinpath("schemas").iterdir()}
    assert names == {f"{kind}.json" for kind in VERSIONS} | {"common.json"}


def test_without_json_an_error_prints_nothing_on_stdout(write_site) -> None:
    result = invoke("plan", "no-such-site")
    assert (result.exit_code, result.stdout) == (2, "")


def test_validate_lists_every_problem_with_file_line_and_message(write_site) -> None:
    bad = write_site()
    bad.write_text(bad.read_text().replace("pue:", "pue: -1 #", 1))
    result = invoke("validate", TX, str(bad), "no-such-site", "--json")
    assert result.exit_code == 2
    data = conforms(result.stdout, "validate")
    assert data["valid"] is False
    assert [site["valid"] for site in data["sites"]] == [True, False, False]
    files_and_lines = [(p["file"], p["line"] is not None) for p in data["problems"]]
    assert files_and_lines == [(str(bad), True), ("no-such-site", False)]


def test_validate_of_valid_sites_has_no_problems() -> None:
    data = conforms(invoke("validate", TX, "--json").stdout, "validate")
    assert (data["valid"], data["problems"], data["sites"][0]["name"]) == (True, [], "tx-odessa")
