"""The site controller's units (examples/systemd/: `ecohash grid watch`, the site registry) are
ones systemd accepts, and run commands ecohash has."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from ecohash.commands.main import cli
from tests.conftest import REPO

UNITS = REPO / "examples" / "systemd"
UNIT = UNITS / "ecohash-grid-watch@.service"
REGISTRY_UNIT = UNITS / "ecohash-site-registry@.service"
CHECKOUT = "/opt/ecohash"


def service_of(unit_file: Path) -> configparser.SectionProxy:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read_string(unit_file.read_text())
    return unit["Service"]


def test_the_unit_runs_grid_watch_for_its_instance_and_stops_gently() -> None:
    service = service_of(UNIT)
    command = shlex.split(service["ExecStart"])
    assert command[0] == f"{CHECKOUT}/.venv/bin/ecohash" and command[1:] == ["grid", "watch", "%i"]
    assert service["KillSignal"] == "SIGTERM" and service["Restart"] == "always"
    assert service["User"] == "ecohash" and service["UMask"] == "0077"
    # The command and its options exist.
    result = CliRunner().invoke(cli, [*command[1:3], "--help"])
    assert result.exit_code == 0 and "--vtn" in result.output


def test_the_registry_unit_runs_the_sites_registry_in_the_foreground() -> None:
    service = service_of(REGISTRY_UNIT)
    command = shlex.split(service["ExecStart"])
    assert command[0] == f"{CHECKOUT}/.venv/bin/ecohash" and command[1:] == ["bundle", "registry", "%i"]
    assert service["Restart"] == "always" and service["RestartPreventExitStatus"] == "2"
    assert service["ReadWritePaths"] == service_of(UNIT)["ReadWritePaths"] == "/var/lib/ecohash"
    result = CliRunner().invoke(cli, [*command[1:3], "--help"])
    assert result.exit_code == 0 and "--registry" in result.output


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("unit_file", [UNIT, REGISTRY_UNIT], ids=lambda path: path.name)
def test_systemd_analyze_verifies_the_unit(tmp_path: Path, unit_file: Path) -> None:
    # verify wants ExecStart's binary to exist: point it at this checkout's.
    ecohash = REPO / ".venv" / "bin" / "ecohash"
    if not ecohash.exists():
        pytest.skip("no .venv in this checkout (scripts/install makes it)")
    text = unit_file.read_text().replace(f"{CHECKOUT}/.venv/bin/ecohash", str(ecohash))
    copy = tmp_path / unit_file.name.replace("@.", "@tx-odessa.")
    copy.write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(copy)], capture_output=True,
                            text=True, check=False)
    problems = [line for line in result.stderr.splitlines() if str(copy) in line or "ecohash" in line]
    assert result.returncode == 0 and not problems, result.stderr
