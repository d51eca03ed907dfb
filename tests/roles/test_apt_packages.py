"""apt_packages: apt runs only where a node's packages differ, and then repairs them."""

from __future__ import annotations

import pytest

from ecohash.lab import simtoolkit
from tests.roles.bootstraps import LAB_HOSTS, Bootstrapped, host_results
from tests.roles.rounds import APT_HOST, TOOLKIT_HOST, ChangedAndBack, FaultRounds, changed_tasks

pytestmark = pytest.mark.lab

APT_ACTIONS = {"apt", "ansible.builtin.apt", "ansible.legacy.apt"}
DPKG_QUERY_TASK = "Ask dpkg which packages are installed, at which version, and which are held"


def test_an_idempotent_run_asks_dpkg_and_never_runs_apt(bootstrapped: Bootstrapped) -> None:
    first_apt_hosts = {e["host"] for e in host_results(bootstrapped.first) if e["task_action"] in APT_ACTIONS}
    assert first_apt_hosts == set(LAB_HOSTS)  # the first run installed through apt
    second = list(host_results(bootstrapped.second))
    assert [e["task"] for e in second if e["task_action"] in APT_ACTIONS] == []
    asked = {e["host"] for e in second if e["task"] == DPKG_QUERY_TASK}
    assert asked == set(LAB_HOSTS)


def test_a_removed_package_and_a_released_hold_are_repaired(
    bootstrapped: Bootstrapped, faults: FaultRounds,
) -> None:
    assert faults.repair.run.returncode == 0, faults.repair.run.output
    host = bootstrapped.host(APT_HOST)
    assert host.package("pciutils").is_installed
    assert "runc" in host.check_output("apt-mark showhold").split()
    # Only the two repairs: the hold loop reports the item it held, then the task.
    assert changed_tasks(faults.repair.run, APT_HOST, role="apt_packages") == [
        "Hold the packages against upgrades"] * 2 + ["Install the packages that are missing or at another version"]


def test_a_standard_rolled_back_downgrades_a_held_package(changed_and_back: ChangedAndBack) -> None:
    runs = changed_and_back
    assert runs.changed.returncode == 0, runs.changed.output
    assert runs.toolkit_version_changed == simtoolkit.LATER_PACKAGE_VERSION
    # The lab's own standard again: the version before, which is lower than the node's.
    assert runs.back.returncode == 0, runs.back.output
    assert runs.toolkit_version_back == simtoolkit.PACKAGE_VERSION
    assert runs.toolkit_held_back
    assert runs.again.returncode == 0, runs.again.output
    assert runs.again.summary["hosts"][TOOLKIT_HOST]["changed"] == 0
