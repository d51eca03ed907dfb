"""`ecohash bootstrap`'s refusals: everything wrong with the input is caught before Ansible
starts, as one FILE:LINE line and exit 2, and no run directory is made for it. Its options
are named as provision's, and what it converges is recorded in the rollout state."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ecohash.commands.main import cli
from tests.conftest import EXAMPLE_SITE


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ECOHASH_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def bootstrap(*args: str):
    return CliRunner().invoke(cli, ["bootstrap", *args], catch_exceptions=False)


def test_invalid_site_is_one_line_exit_2_and_nothing_runs(write_site, state: Path) -> None:
    path = write_site(EXAMPLE_SITE, ("grid_mw: 12.5", "grid_mw: -1"))
    result = bootstrap(str(path))
    assert result.exit_code == 2
    assert result.output == f"{path}:8: spec.power.grid_mw: must be greater than 0 (got -1)\n"
    assert not (state / "runs").exists()


def test_a_broken_node_standard_is_reported_at_its_line(write_site, tmp_path: Path, state: Path) -> None:
    standard = tmp_path / "standard.lock.yml"
    standard.write_text("apiVersion: ecohash.io/v1\nkind: NodeStandard\n")
    site = write_site(EXAMPLE_SITE + "  provisioning:\n    standard: standard.lock.yml\n")
    result = bootstrap(str(site))
    assert result.exit_code == 2
    assert f"{standard}:1: missing required key 'metadata'" in result.output.splitlines()
    assert not (state / "runs").exists()


@pytest.mark.parametrize("option", ["--wave-size", "--serial"])
@pytest.mark.parametrize("size", ["0", "ten", "10%%", "-1"])
def test_bad_wave_size_is_a_usage_error_under_either_name(option: str, size: str, state: Path) -> None:
    result = bootstrap("tx-odessa", option, size)
    assert result.exit_code == 2
    assert "Invalid value for '--wave-size'" in result.output


@pytest.mark.parametrize("option", ["--max-fail-pct", "--max-fail-percentage"])
def test_max_fail_pct_is_bounded_under_either_name(option: str, state: Path) -> None:
    result = bootstrap("tx-odessa", option, "101")
    assert result.exit_code == 2
    assert "Invalid value for '--max-fail-pct'" in result.output


def test_help_names_provision_s_options_and_hides_the_old_names() -> None:
    options = bootstrap("--help").output.split("Options:\n", 1)[1]
    for name in ("--wave-size", "--max-fail-pct", "--dry-run"):
        assert name in options
    for old in ("--serial", "--max-fail-percentage", "--check"):
        assert old not in options


def test_a_site_being_provisioned_is_refused_naming_the_holder(write_site, state: Path) -> None:
    from ecohash.locks import site_lock

    path = write_site()
    with site_lock("tx-odessa", "provision"):
        result = bootstrap(str(path))
    assert result.exit_code == 1
    assert "site tx-odessa is busy: `ecohash provision` by" in result.output
    assert not (state / "runs").exists()


class FakeRun:
    """run_playbook without Ansible: c01-r01-n01 converges, n02 fails, n03 is unreachable and
    n04 never reaches the node play's last task (a playbook ended early)."""

    def __init__(self) -> None:
        self.requests: list[Any] = []

    def __call__(self, request: Any, on_update: Any, cancel: Any = None) -> Any:
        from ecohash.ansible.runner import HostProgress, RunResult, new_run_directory

        self.requests.append(request)
        hosts = {name: HostProgress(name) for name in ("c01-r01-n01", "c01-r01-n02", "c01-r01-n03",
                                                        "c01-r01-n04")}
        hosts["c01-r01-n01"].ran_node_play = True
        hosts["c01-r01-n02"].ran_node_play = True  # ran it, and failed a task after all
        hosts["c01-r01-n02"].counts["failed"] = 1
        hosts["c01-r01-n03"].counts["unreachable"] = 1
        return RunResult(rc=2, status="failed", directory=new_run_directory(request.site_name, "bootstrap.yml"),
                         hosts=hosts, stats={"failures": {"c01-r01-n02": 1}, "dark": {"c01-r01-n03": 1}})


@pytest.fixture
def fake_run(monkeypatch: pytest.MonkeyPatch) -> FakeRun:
    from ecohash.ansible import runner

    fake = FakeRun()
    monkeypatch.setattr(runner, "run_playbook", fake)
    return fake


def test_converged_nodes_are_current_for_status_and_plan(write_site, state: Path, fake_run: FakeRun) -> None:
    path = str(write_site())
    result = bootstrap(path, "--wave-size", "2", "--max-fail-percentage", "10")
    assert result.exit_code == 1
    assert "2 node(s) did not converge: c01-r01-n02, c01-r01-n03" in result.output
    assert "recorded as standard in the rollout state: 1 node(s)" in result.output
    assert (fake_run.requests[0].serial, fake_run.requests[0].max_fail_percentage) == (2, 10)
    status = json.loads(CliRunner().invoke(cli, ["status", path, "--json"]).stdout)
    nodes = {node["name"]: node for node in status["nodes"]}
    assert nodes["c01-r01-n01"]["current"] is True and nodes["c01-r01-n01"]["status"] == "passed"
    assert nodes["c01-r01-n01"]["run"].endswith("-bootstrap")
    assert [nodes[f"c01-r01-n0{i}"]["status"] for i in (2, 3, 4)] == ["never"] * 3
    plan = json.loads(CliRunner().invoke(cli, ["plan", path, "--json"]).stdout)
    assert "c01-r01-n01" not in {change["name"] for change in plan["changes"]["nodes"]}


def test_a_mistyped_limit_is_refused_before_ansible_starts(write_site, state: Path, fake_run: FakeRun) -> None:
    result = bootstrap(str(write_site()), "--limit", "container_c09")
    assert (result.exit_code, result.output) == (2, "ecohash: --limit 'container_c09': 'container_c09' is no "
                                                    "node or group\n")
    assert fake_run.requests == []


def test_only_converged_nodes_in_the_limit_are_recorded(write_site, state: Path, fake_run: FakeRun) -> None:
    path = str(write_site())
    bootstrap(path, "--limit", "c01-r01-n02")  # the fake says n01 converged too: not in scope, not recorded
    assert not (state / "rollouts").exists()
    bootstrap(path, "--limit", "c01-r01-n01")
    status = json.loads(CliRunner().invoke(cli, ["status", path, "--json"]).stdout)
    assert [node["name"] for node in status["nodes"] if node["current"]] == ["c01-r01-n01"]


def test_a_dry_run_checks_and_records_nothing(write_site, state: Path, fake_run: FakeRun) -> None:
    for flag in ("--dry-run", "--check"):
        bootstrap(str(write_site()), flag)
    assert [request.check for request in fake_run.requests] == [True, True]
    assert not (state / "rollouts").exists()
