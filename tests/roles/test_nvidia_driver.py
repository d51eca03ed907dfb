"""nvidia_driver: the pinned (SIMULATED in the lab) driver, pinned, held, and verified."""

from __future__ import annotations

import json

import pytest

from tests.roles.bootstraps import LAB_HOSTS, Bootstrapped
from tests.roles.rounds import FEWER_GPUS_HOST, FaultRounds

pytestmark = pytest.mark.lab

SIMULATED_VERSION = "550.127.05-1~ecohashsim1"


@pytest.mark.parametrize("name", LAB_HOSTS)
def test_driver_package_is_the_pinned_version_and_held(bootstrapped: Bootstrapped, name: str) -> None:
    host = bootstrapped.host(name)
    package = host.package("nvidia-driver-sim")
    assert package.is_installed
    assert package.version == SIMULATED_VERSION
    assert host.run("apt-mark showhold").stdout.split() == [
        "containerd", "nvidia-container-toolkit-sim", "nvidia-driver-sim", "runc",
    ]
    preferences = host.file("/etc/apt/preferences.d/ecohash-nvidia-driver").content_string
    assert f"Pin: version {SIMULATED_VERSION}" in preferences
    assert "Pin-Priority: 1001" in preferences
    policy = host.run("apt-cache policy nvidia-driver-sim").stdout
    assert f"Candidate: {SIMULATED_VERSION}" in policy


def test_nvidia_smi_reports_the_pinned_version_and_the_skus_gpus(bootstrapped: Bootstrapped) -> None:
    for name, model in (("c01-r01-n01", "NVIDIA H100 80GB HBM3"), ("c02-r01-n01", "NVIDIA L40S")):
        out = bootstrapped.host(name).check_output(
            "nvidia-smi --query-gpu=driver_version,name --format=csv,noheader"
        )
        assert out.splitlines() == [f"550.127.05, {model}"] * 2


def test_simulated_driver_says_so(bootstrapped: Bootstrapped) -> None:
    host = bootstrapped.host("c01-r01-n01")
    assert "SIMULATED" in host.check_output("nvidia-smi --version 2>&1")
    assert host.file("/usr/share/doc/nvidia-driver-sim/README.simulated").exists


def test_verification_fails_when_the_node_has_fewer_gpus_than_its_sku(faults: FaultRounds) -> None:
    run = faults.failure.run
    assert run.returncode == 1
    assert FEWER_GPUS_HOST in run.summary["failed_hosts"]
    assert "nvidia-smi reports 1 GPU(s)" in run.summary["hosts"][FEWER_GPUS_HOST]["failure"]


def test_the_persistence_daemon_starts_after_the_driver_reboot(bootstrapped: Bootstrapped) -> None:
    """A new driver's nvidia-persistenced cannot start before the reboot loads its module."""
    name = "c01-r01-n01"
    order = []
    for path in sorted(bootstrapped.first.directory.glob("artifacts/*/job_events/*.json")):
        event = json.loads(path.read_text())
        data = event.get("event_data", {})
        if data.get("host") == name and event.get("event", "").startswith("runner_on_"):
            order.append((event["counter"], str(data.get("task")).split(" : ")[-1]))
    tasks = [task for _, task in sorted(order)]
    # The lab's SIMULATED driver needs no reboot and ships no daemon: both are skipped,
    # but a first install notifies the handler, so both appear in the play's order.
    reboot = tasks.index("Reboot for the new driver")
    persistenced = tasks.index("Keep the persistence daemon running, where the driver ships one")
    assert reboot < persistenced
