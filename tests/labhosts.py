"""The lab for tests: real Debian hosts that lab, role and rollout tests run against.

tests/conftest.py turns this into the session fixture `lab`. The base root filesystem is
built once (cached in ecohash's state directory across sessions), the hosts are started
once per session (about a second), and the lab is torn down when the session ends.
Tests marked `lab` skip, with the reason, where the lab cannot run: not Linux, not
root, or the Debian packages it needs are missing.

Converging hosts takes minutes, so each converged state is built once and shared: a test
asks for the state it needs (fresh, bootstrapped, with an executor, provisioned offline),
the Lab rebuilds only when the hosts are in another, and tests/conftest.py runs the tests
grouped by state in LAB_STATES' order so that no state is built twice.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from ecohash import lab as lab_library
from ecohash.errors import InvalidInputError
from ecohash.lab import lifecycle, mirror, proxy
from ecohash.lab.layout import BRIDGE_ADDRESS, LabPaths
from ecohash.paths import facts_dir, state_dir

LAB_NODES = 4
ECOHASH = str(Path(sys.executable).parent / "ecohash")
LAB_CONTAINERS = 2

# The fixtures that converge the lab into a state, in the order a session builds them: a
# lab test runs in the group of the earliest of these it uses (none: fresh hosts, first).
# The first offline provision is recorded for the tests that check it, so they go before
# the other tests of that lab, which provision and edit it again.
LAB_STATES = ("bootstrapped", "executor_lab", "first_provision", "provisioned_lab")


def lab_state_rank(fixture_names: list[str]) -> int:
    """Where a test goes in the session: 0 for fresh hosts, then LAB_STATES' order."""
    return min((rank for rank, name in enumerate(LAB_STATES, 1) if name in fixture_names), default=0)


def lab_unavailable_reason() -> str | None:
    """Why the lab cannot run here, in the library's own words, or None when it can."""
    try:
        lifecycle.check_can_run()
        lifecycle.check_tools()
    except InvalidInputError as refusal:
        return str(refusal)
    return None


@dataclass(frozen=True)
class ProvisionRun:
    """`ecohash provision lab --json`'s run: the report on stdout, progress on stderr."""

    stdout: str
    stderr: str
    seconds: float


@dataclass
class Lab:
    """A running lab: its hosts, and SSH into them the way Ansible and testinfra will."""

    nodes: int
    containers: int
    paths: LabPaths
    # Whether /run/netns was a mount before the lab: if so, it is not the lab's to remove.
    run_netns_was_mounted: bool
    # What changed the running hosts since `lab up` ("offline provision", "bootstrap", "site
    # mirror"), None for fresh hosts.
    changed_by: str | None = None
    # Whether the running lab has `lab up --executor`'s extra host.
    executor: bool = False
    # The offline provision of the running hosts, from fresh (provision_offline's).
    offline_provision: ProvisionRun | None = None

    def up(self, *, offline: bool = False, executor: bool = False) -> lab_library.LabStatus:
        status = lab_library.up(nodes=self.nodes, containers=self.containers, offline=offline,
                                executor=executor)
        self.changed_by = None
        self.executor = executor
        self.offline_provision = None
        return status

    def provision_offline(self) -> ProvisionRun:
        """An offline lab (no apt proxy; everything from the lab's bundle) provisioned from
        fresh hosts by the real CLI: once per session for every module that asks, since a
        provision is the slowest thing the suite does (the rollout, gitops, offline bundle
        and grid tests share it)."""
        if self.offline_provision is not None and self.changed_by == "offline provision":
            return self.offline_provision
        self.up(offline=True)
        # `lab up` forgets the lab's rollout state and cached facts: this provision starts from nothing.
        assert not (state_dir() / "rollouts" / "lab" / "state.json").exists()
        assert not facts_dir("lab").exists()
        started = time.monotonic()
        result = subprocess.run([ECOHASH, "provision", "lab", "--json"], capture_output=True, text=True,
                                timeout=1200, check=False)
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-6000:]
        self.changed_by = "offline provision"
        self.offline_provision = ProvisionRun(result.stdout, result.stderr, time.monotonic() - started)
        return self.offline_provision

    def with_executor(self) -> None:
        """`lab up --executor`'s extra host, keeping hosts that already have one (the role
        tests' bootstrapped lab): an executor's provision of converged nodes is a forced
        one, not another convergence from fresh."""
        if not self.executor:
            self.up(executor=True)

    def fresh(self) -> None:
        """Hosts nobody changed, for tests that expect them: new ones only when needed."""
        if self.changed_by is not None or self.executor:
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
        from hosts that know neither (see tests/roles). The hosts are no longer fresh after it.
        """
        self.changed_by = self.changed_by or "site mirror"
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
