"""The lab for tests: real Debian hosts that lab, role and rollout tests run against.

tests/conftest.py turns this into the session fixture `lab`. The base root filesystem is
built once (cached in ecohash's state directory across sessions), the hosts are started
once per session (about a second), and the lab is torn down when the session ends.
Tests marked `lab` skip, with the reason, where the lab cannot run: not Linux, not
root, or the Debian packages it needs are missing.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from ecohash import lab as lab_library
from ecohash.errors import InvalidInputError
from ecohash.lab import lifecycle, mirror, proxy
from ecohash.lab.layout import BRIDGE_ADDRESS, LabPaths

LAB_NODES = 4
ECOHASH = str(Path(sys.executable).parent / "ecohash")
LAB_CONTAINERS = 2


def lab_unavailable_reason() -> str | None:
    """Why the lab cannot run here, in the library's own words, or None when it can."""
    try:
        lifecycle.check_can_run()
        lifecycle.check_tools()
    except InvalidInputError as refusal:
        return str(refusal)
    return None


@dataclass
class Lab:
    """A running lab: its hosts, and SSH into them the way Ansible and testinfra will."""

    nodes: int
    containers: int
    paths: LabPaths
    # Whether /run/netns was a mount before the lab: if so, it is not the lab's to remove.
    run_netns_was_mounted: bool
    # How the running hosts were provisioned by provision() ("offline"), None for fresh hosts.
    provisioned: str | None = None
    # Whether the running lab has `lab up --executor`'s extra host.
    executor: bool = False

    def up(self, *, offline: bool = False, executor: bool = False) -> lab_library.LabStatus:
        status = lab_library.up(nodes=self.nodes, containers=self.containers, offline=offline,
                                executor=executor)
        self.provisioned = None
        self.executor = executor
        return status

    def provision_offline(self) -> None:
        """An offline lab (no apt proxy; everything from the lab's bundle) provisioned by the
        real CLI: once per session for every module that asks, since a provision is the
        slowest thing the suite does (tests/bundle's offline test and tests/grid share it)."""
        if self.provisioned == "offline" and not self.executor:
            return
        self.up(offline=True)
        result = subprocess.run([ECOHASH, "provision", "lab"], capture_output=True, text=True,
                                timeout=1200, check=False)
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-6000:]
        self.provisioned = "offline"

    def fresh(self) -> None:
        """Hosts nobody provisioned, for tests that expect them: new ones only when needed."""
        if self.provisioned is not None or self.executor:
            self.up()

    def status(self) -> lab_library.LabStatus:
        return lab_library.status()

    @property
    def host_names(self) -> list[str]:
        return [host.name for host in self.status().hosts]

    @property
    def ssh_config(self) -> Path:
        return self.paths.ssh_config

    def ssh(
        self, node: str, command: str, check: bool = True, timeout_s: float = 300,
        input_bytes: bytes | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a shell command on a lab host as root; fail the test with its output if asked."""
        result = subprocess.run(
            lab_library.ssh_command(node, [command]),
            capture_output=True,
            input=input_bytes,
            timeout=timeout_s,
            check=False,
        )
        result = subprocess.CompletedProcess(
            result.args, result.returncode,
            result.stdout.decode(errors="replace"), result.stderr.decode(errors="replace"),
        )
        if check and result.returncode != 0:
            pytest.fail(
                f"on {node}: {command!r} exited {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    def use_site_mirror(self, node: str) -> None:
        """Point a host's apt at the lab's proxy and signed mirror, as the base role does.

        For lab tests that install packages without running the roles; role tests start
        from hosts that know neither (see tests/roles).
        """
        keyring = (self.paths.mirror_dir / "current" / mirror.KEYRING_PATH).read_bytes()
        self.ssh(node, "mkdir -p /etc/apt/keyrings && cat > /etc/apt/keyrings/lab-mirror.gpg",
                 input_bytes=keyring)
        self.ssh(
            node,
            f"echo 'Acquire::http::Proxy \"{proxy.proxy_url()}\";' "
            f"'Acquire::http::Proxy::{BRIDGE_ADDRESS} \"DIRECT\";' > /etc/apt/apt.conf.d/01lab-proxy"
            f" && echo 'deb [signed-by=/etc/apt/keyrings/lab-mirror.gpg] {mirror.mirror_url()}/apt ./'"
            " > /etc/apt/sources.list.d/lab-mirror.list",
        )
