"""The site controller's unit for `ecohash grid watch` (examples/systemd/) is one systemd accepts,
and runs a command ecohash has."""

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

UNIT = REPO / "examples" / "systemd" / "ecohash-grid-watch@.service"
CHECKOUT = "/opt/ecohash"


def test_the_unit_runs_grid_watch_for_its_instance_and_stops_gently() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read_string(UNIT.read_text())
    service = unit["Service"]
    command = shlex.split(service["ExecStart"])
    assert command[0] == f"{CHECKOUT}/.venv/bin/ecohash" and command[1:] == ["grid", "watch", "%i"]
    assert service["KillSignal"] == "SIGTERM" and service["Restart"] == "always"
    assert service["User"] == "ecohash" and service["UMask"] == "0077"
    # The command and its options exist.
    result = CliRunner().invoke(cli, [*command[1:3], "--help"])
    assert result.exit_code == 0 and "--vtn" in result.output


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    # verify wants ExecStart's binary to exist: point it at this checkout's.
    ecohash = REPO / ".venv" / "bin" / "ecohash"
    if not ecohash.exists():
        pytest.skip("no .venv in this checkout (scripts/install makes it)")
    text = UNIT.read_text().replace(f"{CHECKOUT}/.venv/bin/ecohash", str(ecohash))
    copy = tmp_path / "ecohash-grid-watch@tx-odessa.service"
    copy.write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(copy)], capture_output=True,
                            text=True, check=False)
    problems = [line for line in result.stderr.splitlines() if str(copy) in line or "ecohash" in line]
    assert result.returncode == 0 and not problems, result.stderr
