"""node_health: a verdict per node that decides, and a failing node skipped and named."""

from __future__ import annotations

import json

import pytest

from tests.roles.bootstraps import LAB_HOSTS, Bootstrapped
from tests.roles.rounds import ECC_HOST, FAILING_HOSTS, REMAP_HOST, FaultRounds

pytestmark = pytest.mark.lab


@pytest.mark.parametrize("name", LAB_HOSTS)
def test_verdict_file_passes_and_says_simulated(bootstrapped: Bootstrapped, name: str) -> None:
    verdict = json.loads(bootstrapped.host(name).file("/var/lib/ecohash/health/verdict.json").content_string)
    assert verdict["passed"] is True
    assert verdict["simulated"] is True
    assert verdict["node"] == name
    checks = {c["check"]: c for c in verdict["checks"]}
    assert set(checks) == {
        "gpu_count", "driver_version", "gpu_model", "power_limit_w", "persistence_mode",
        "ecc_uncorrected", "retired_pages_pending", "remapped_rows_pending", "remapped_rows_failure",
    }
    # H100 and L40S remap rows: their retired pages are N/A, and judged not applicable.
    assert checks["retired_pages_pending"]["found"] == [
        "GPU 0: not applicable (row remapping)", "GPU 1: not applicable (row remapping)"]
    assert checks["remapped_rows_pending"]["found"] == ["GPU 0: 0", "GPU 1: 0"]


def test_a_gpu_with_a_pending_row_remap_fails_the_node(faults: FaultRounds) -> None:
    run = faults.failure.run
    assert run.returncode == 1
    assert sorted(run.summary["failed_hosts"]) == sorted(FAILING_HOSTS)  # one fault each
    assert "failed acceptance: remapped_rows_pending" in run.summary["hosts"][REMAP_HOST]["failure"]
    verdict = faults.failure.verdicts[REMAP_HOST]
    assert verdict["failed_checks"] == ["remapped_rows_pending"]
    pending = next(c for c in verdict["checks"] if c["check"] == "remapped_rows_pending")
    assert pending["found"] == ["GPU 0: 0", "GPU 1: 1"]
    assert "reset the GPU" in pending["expected"]


def test_a_node_with_uncorrected_ecc_errors_fails_and_is_not_joined(faults: FaultRounds) -> None:
    run = faults.failure.run
    assert run.returncode == 1
    assert ECC_HOST in run.summary["failed_hosts"]
    assert "failed acceptance: ecc_uncorrected" in run.summary["hosts"][ECC_HOST]["failure"]
    verdict = faults.failure.verdicts[ECC_HOST]
    assert verdict["passed"] is False
    assert verdict["failed_checks"] == ["ecc_uncorrected"]
    assert not faults.failure.ecc_host_rejoined  # later roles skipped the node


def test_the_failed_nodes_pass_again_once_their_gpus_are_healthy(faults: FaultRounds) -> None:
    heal = faults.heal
    assert sorted(heal.summary["hosts"]) == sorted(FAILING_HOSTS)
    assert all(host["health"]["passed"] for host in heal.summary["hosts"].values()), heal.summary


def test_verify_playbook_as_a_technician_runs_it_changes_nothing(bootstrapped: Bootstrapped) -> None:
    import re
    import subprocess
    import sys
    from pathlib import Path

    from ecohash.lab.layout import inventory_file
    from tests.conftest import REPO

    # Exactly the technician's command: the repository's ansible.cfg, the site file as inventory.
    result = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory_file()),
         "playbooks/verify.yml"],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    recap = dict(re.findall(r"^(c\d\d-r\d\d-n\d\d)\s+: (.*)$", result.stdout, re.MULTILINE))
    assert sorted(recap) == LAB_HOSTS
    assert all("changed=0" in line and "failed=0" in line for line in recap.values()), recap
