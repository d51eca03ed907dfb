"""`ecohash bootstrap`'s refusals: everything wrong with the input is caught before Ansible
starts, as one FILE:LINE line and exit 2, and no run directory is made for it."""

from __future__ import annotations

from pathlib import Path

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


@pytest.mark.parametrize("serial", ["0", "ten", "10%%", "-1"])
def test_bad_serial_is_a_usage_error(serial: str, state: Path) -> None:
    result = bootstrap("tx-odessa", "--serial", serial)
    assert result.exit_code == 2
    assert "Invalid value for '--serial'" in result.output


def test_max_fail_percentage_is_bounded(state: Path) -> None:
    result = bootstrap("tx-odessa", "--max-fail-percentage", "101")
    assert result.exit_code == 2
    assert "Invalid value for '--max-fail-percentage'" in result.output


def test_a_site_being_provisioned_is_refused_naming_the_holder(write_site, state: Path) -> None:
    from ecohash.locks import site_lock

    path = write_site()
    with site_lock("tx-odessa", "provision"):
        result = bootstrap(str(path))
    assert result.exit_code == 1
    assert "site tx-odessa is busy: `ecohash provision` by" in result.output
    assert not (state / "runs").exists()
