"""The lab as a pytest session fixture: real Debian hosts for role and rollout tests.

The base root filesystem is built once (cached in ecohash's state directory across
sessions), the hosts are started once per session (about a second), and the lab is torn
down when the session ends. Tests marked `lab` skip, with the reason, where the lab
cannot run: not Linux, not root, or the Debian packages it needs are missing.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ecohash import lab as lab_library
from ecohash.errors import InvalidInputError
from ecohash.lab import lifecycle, network
from ecohash.lab.layout import LabPaths

LAB_NODES = 4
LAB_CONTAINERS = 2


def lab_unavailable_reason() -> str | None:
    """Why the lab cannot run here, in the library's own words, or None when it can."""
    try:
        lifecycle.check_can_run()
        lifecycle.check_tools()
    except InvalidInputError as refusal:
        return str(refusal)
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = lab_unavailable_reason()
    if reason is None:
        return
    for item in items:
        if item.get_closest_marker("lab") is not None:
            item.add_marker(pytest.mark.skip(reason=reason))


@dataclass
class Lab:
    """A running lab: its hosts, and SSH into them the way Ansible and testinfra will."""

    nodes: int
    containers: int
    paths: LabPaths
    # Whether /run/netns was a mount before the lab: if so, it is not the lab's to remove.
    run_netns_was_mounted: bool

    def up(self) -> lab_library.LabStatus:
        return lab_library.up(nodes=self.nodes, containers=self.containers)

    def status(self) -> lab_library.LabStatus:
        return lab_library.status()

    @property
    def host_names(self) -> list[str]:
        return [host.name for host in self.status().hosts]

    @property
    def ssh_config(self) -> Path:
        return self.paths.ssh_config

    def ssh(
        self, node: str, command: str, check: bool = True, timeout_s: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """Run a shell command on a lab host as root; fail the test with its output if asked."""
        result = subprocess.run(
            lab_library.ssh_command(node, [command]),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if check and result.returncode != 0:
            pytest.fail(
                f"on {node}: {command!r} exited {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """A lab of LAB_NODES hosts, shared by every test in the session."""
    reason = lab_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    running = Lab(
        nodes=LAB_NODES,
        containers=LAB_CONTAINERS,
        paths=LabPaths.current(),
        run_netns_was_mounted=network.run_netns_is_mounted(),
    )
    running.up()
    try:
        yield running
    finally:
        lab_library.down()
