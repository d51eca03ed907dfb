"""apt_packages: apt runs only where a node's packages differ, and then repairs them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from ecohash.lab import simtoolkit
from tests.roles.conftest import LAB_HOSTS, Bootstrapped, host_results, run_bootstrap

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


def test_a_removed_package_and_a_released_hold_are_repaired(bootstrapped: Bootstrapped) -> None:
    name = "c02-r01-n02"
    bootstrapped.lab.ssh(name, "apt-mark unhold runc && apt-get remove -y -q pciutils")
    run = run_bootstrap("--limit", name)
    assert run.returncode == 0, run.output
    host = bootstrapped.host(name)
    assert host.package("pciutils").is_installed
    assert "runc" in host.check_output("apt-mark showhold").split()
    changed = sorted(e["task"] for e in host_results(run) if e["res"].get("changed"))
    # Only the two repairs: the hold loop reports the item it held, then the task.
    assert changed == ["Hold the packages against upgrades"] * 2 + [
        "Install the packages that are missing or at another version"
    ]


@contextmanager
def toolkit_in_standard(standard_file: Path, version: str) -> Iterator[None]:
    """The lab's standard with another version of the SIMULATED container toolkit, for a while."""
    original = standard_file.read_text()
    standard = yaml.safe_load(original)
    standard["nvidia_container_toolkit"]["version"] = version
    standard_file.write_text(yaml.safe_dump(standard, sort_keys=False))
    try:
        yield
    finally:
        standard_file.write_text(original)


def test_a_standard_rolled_back_downgrades_a_held_package(bootstrapped: Bootstrapped) -> None:
    name = "c02-r01-n01"
    host = bootstrapped.host(name)
    package = simtoolkit.PACKAGE_NAME
    with toolkit_in_standard(bootstrapped.lab.paths.run / "node-standard.lock.yml",
                             simtoolkit.LATER_PACKAGE_VERSION):
        forward = run_bootstrap("--limit", name)
        assert forward.returncode == 0, forward.output
        assert host.package(package).version == simtoolkit.LATER_PACKAGE_VERSION
    # The lab's own standard again: the version before, which is lower than the node's.
    back = run_bootstrap("--limit", name)
    assert back.returncode == 0, back.output
    assert host.package(package).version == simtoolkit.PACKAGE_VERSION
    assert package in host.check_output("apt-mark showhold").split()
    again = run_bootstrap("--limit", name)
    assert again.returncode == 0, again.output
    assert again.summary["hosts"][name]["changed"] == 0
