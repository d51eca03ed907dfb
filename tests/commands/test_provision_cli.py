"""`ecohash provision` and `ecohash status` refusals: bad input is one line, exit 2, and
nothing is half-applied: no lock taken, no run directory, no rollout state."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ecohash.commands.main import cli
from ecohash.locks import site_lock
from tests.conftest import EXAMPLE_SITE


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ECOHASH_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_an_infeasible_site_refuses_to_start(write_site, state: Path) -> None:
    path = write_site(EXAMPLE_SITE, ("power_kw: 45", "power_kw: 5"))
    result = run("provision", str(path))
    assert result.exit_code == 2
    assert result.output.startswith(f"{path}:")
    assert "rack c01/r01" in result.output
    assert not (state / "runs").exists() and not (state / "rollouts").exists()
    assert not (state / "locks").exists()


def test_a_limit_that_selects_nothing_is_invalid_input(write_site, state: Path) -> None:
    result = run("provision", str(write_site()), "--limit", "container_c09")
    assert result.exit_code == 2
    assert result.output == "ecohash: --limit 'container_c09': 'container_c09' is no node or group\n"
    assert not (state / "runs").exists()


@pytest.mark.parametrize(("option", "value"), [("--wave-size", "0"), ("--wave-size", "ten"),
                                               ("--max-fail-pct", "101"), ("--canary", "-1"),
                                               ("--shards", "0"), ("--shards", "two")])
def test_bad_options_are_usage_errors(write_site, state: Path, option: str, value: str) -> None:
    result = run("provision", str(write_site()), option, value)
    assert result.exit_code == 2
    assert f"Invalid value for '{option}'" in result.output
    assert not (state / "runs").exists()


def test_drift_refuses_a_bad_shard_count_with_its_error_status(write_site, state: Path) -> None:
    # drift's 2 means "drifted": its bad input exits 1, as every error of drift does.
    result = run("drift", str(write_site()), "--shards", "0")
    assert result.exit_code == 1
    assert "Error: Invalid value for '--shards': 0 is not in the range x>=1." in result.output
    assert not (state / "runs").exists()


def test_a_second_provision_is_refused_while_the_first_holds_the_site(write_site, state: Path) -> None:
    with site_lock("tx-odessa", "provision"):
        result = run("provision", str(write_site()))
    assert result.exit_code == 1
    assert result.output.startswith("ecohash: site tx-odessa is busy: `ecohash provision` by ")
    assert not (state / "runs").exists()


def test_status_of_a_site_never_provisioned(write_site, state: Path) -> None:
    result = run("status", str(write_site()), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["counts"] == {"never": 4}
    assert [node["status"] for node in data["nodes"]] == ["never"] * 4
    assert all(len(node["fingerprint"]) == 64 and not node["current"] for node in data["nodes"])


@pytest.mark.parametrize("dry_run", [[], ["--dry-run"]], ids=["run", "dry run"])
def test_an_ssh_config_that_turns_host_key_checking_off_is_refused(write_site, state: Path,
                                                                   dry_run: list[str]) -> None:
    path = write_site(EXAMPLE_SITE + "  provisioning:\n    ssh: {config_file: ssh_config}\n")
    config = path.parent / "ssh_config"
    config.write_text("Host *\n    StrictHostKeyChecking accept-new\n")

    result = run("provision", str(path), *dry_run)

    assert result.exit_code == 2
    assert result.output == (
        f"{config}:2: StrictHostKeyChecking accept-new turns host key checking off, and ecohash always "
        "checks host keys; list the nodes' keys in a known_hosts file the ssh_config names\n"
    )
    assert not (state / "runs").exists() and not (state / "rollouts").exists()
    assert not (state / "locks").exists()
