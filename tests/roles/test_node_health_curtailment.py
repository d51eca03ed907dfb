"""node_health's power check during a curtailment: the override in force on the node sets the limit."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

from tests.conftest import REPO

spec = importlib.util.spec_from_file_location(
    "ecohash_node_health", REPO / "plugins/modules/ecohash_node_health.py")
assert spec is not None and spec.loader is not None
node_health = importlib.util.module_from_spec(spec)
spec.loader.exec_module(node_health)

PARAMS = {"gpu_count": 2, "driver_version": "550", "gpu_name": None, "power_limit_w": 450}
GPUS = [{"index": "0", "name": "H100", "driver_version": "550", "power.limit": "300.00",
         "persistence_mode": "Enabled", "ecc.errors.uncorrected.volatile.total": "0",
         "retired_pages.pending": "No"}] * 2


class Module:
    """The slice of AnsibleModule the check uses: run_command."""

    def run_command(self, argv: list[str]) -> tuple[int, str, str]:
        import subprocess

        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        return done.returncode, done.stdout, done.stderr


def script(tmp_path: Path, override: dict | None) -> str:
    path = tmp_path / "ecohash-gpu-power"
    read_back = json.dumps({"node_time": 1.0, "planned_cap_w": 450, "override": override, "gpus": []})
    path.write_text(f"#!/bin/sh\necho '{read_back}'\n")
    os.chmod(path, 0o755)
    return str(path)


def power_check(checks: list[dict]) -> dict:
    return next(check for check in checks if check["check"] == "power_limit_w")


def test_the_override_s_cap_in_force_is_the_limit_expected(tmp_path: Path) -> None:
    override = {"event": "20261202-064120-465e17", "cap_w": 300, "until": 0, "set_at": 1}
    found = node_health.curtailment_in_force(Module(), script(tmp_path, override))
    check = power_check(node_health.gpu_checks(PARAMS, GPUS, found))
    assert check == {"check": "power_limit_w", "passed": True, "found": ["300.00", "300.00"], "expected": 300,
                     "curtailment_event": "20261202-064120-465e17"}


def test_without_an_override_or_the_script_the_budget_s_cap_is_expected(tmp_path: Path) -> None:
    for found in (node_health.curtailment_in_force(Module(), script(tmp_path, None)),
                  node_health.curtailment_in_force(Module(), str(tmp_path / "absent"))):
        assert found is None
        check = power_check(node_health.gpu_checks(PARAMS, GPUS, found))
        assert (check["passed"], check["expected"]) == (False, 450)
