"""The lab against its issue: real hosts, strict SSH, systemd, apt via the proxy, the
simulated driver from the site mirror, bad states, and a `down` that leaves nothing."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from ecohash import lab as lab_library
from ecohash import process
from ecohash.errors import EcohashError
from ecohash.lab import cgroups, hosts, lifecycle, mounts, network, state
from ecohash.lab.layout import BRIDGE_NAME, inventory_file
from ecohash.paths import resolve_site

if TYPE_CHECKING:
    from tests.labhosts import Lab

pytestmark = pytest.mark.lab

QUERY = (
    "index,name,driver_version,power.limit,power.draw,power.min_limit,power.max_limit,"
    "power.default_limit,persistence_mode,count,uuid,serial,"
    "ecc.errors.uncorrected.volatile.total,retired_pages.pending"
)


@pytest.fixture(autouse=True, scope="module")
def fresh_hosts(lab: Lab) -> None:
    """These tests describe hosts as `lab up` makes them: none an earlier module provisioned."""
    lab.fresh()


def test_every_host_answers_ssh_with_strict_host_key_checking(lab: Lab) -> None:
    status = lab.status()
    assert [h.state for h in status.hosts] == ["up"] * lab.nodes
    for name in lab.host_names:
        assert lab.ssh(name, "hostname").stdout.strip() == name


def test_ssh_refuses_a_host_whose_key_is_not_known(lab: Lab, tmp_path: Path) -> None:
    empty_known_hosts = tmp_path / "known_hosts"
    empty_known_hosts.write_text("")
    host = lab.status().hosts[0]
    result = subprocess.run(
        [
            "ssh", "-F", str(lab.ssh_config), "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={empty_known_hosts}", host.name, "true",
        ],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 255
    assert "Host key verification failed" in result.stderr


def test_each_host_has_its_own_host_key(lab: Lab) -> None:
    keys = [line.split()[2] for line in lab.paths.known_hosts.read_text().splitlines()]
    assert len(keys) == lab.nodes == len(set(keys))


def test_systemd_is_pid_1_and_the_system_is_running(lab: Lab) -> None:
    for name in lab.host_names:
        answer = lab.ssh(name, "systemctl is-system-running --wait", check=False).stdout.strip()
        assert answer in ("running", "degraded"), f"{name}: {answer}"
        assert lab.ssh(name, "cat /proc/1/comm").stdout.strip() == "systemd"


def test_hosts_have_no_route_off_the_lab_subnet(lab: Lab) -> None:
    routes = lab.ssh(lab.host_names[0], "ip -4 route").stdout
    assert "default" not in routes
    assert "10.213.0.0/24" in routes


def test_hosts_start_without_apt_settings_like_a_fresh_node(lab: Lab) -> None:
    # The base role must configure the site's proxy and mirror; the lab gives no head start.
    listing = lab.ssh(lab.host_names[0], "ls /etc/apt/apt.conf.d /etc/apt/sources.list.d").stdout
    assert "proxy" not in listing
    assert "mirror" not in listing


def test_apt_installs_from_debian_through_the_lab_proxy(lab: Lab) -> None:
    host = lab.host_names[0]
    lab.use_site_mirror(host)
    lab.ssh(host, "apt-get update -q")
    lab.ssh(host, "DEBIAN_FRONTEND=noninteractive apt-get install -y -q less")
    assert lab.ssh(host, "command -v less").stdout.strip() == "/usr/bin/less"


def test_simulated_nvidia_smi_answers_once_installed_from_the_site_mirror(lab: Lab) -> None:
    host = "c01-r01-n01"  # an H100 node
    lab.use_site_mirror(host)
    lab.ssh(host, "apt-get update -q")
    lab.ssh(host, "DEBIAN_FRONTEND=noninteractive apt-get install -y -q nvidia-driver-sim")
    csv = lab.ssh(host, f"nvidia-smi --query-gpu={QUERY} --format=csv").stdout.splitlines()
    assert csv[0].startswith("index, name, driver_version, power.limit [W], power.draw [W]")
    assert csv[1].startswith("0, NVIDIA H100 80GB HBM3, 550.127.05, 700.00 W, ")
    assert len(csv) == 3

    too_low = lab.ssh(host, "nvidia-smi -pl 100", check=False)
    assert too_low.returncode == 2
    assert "is not a valid power limit which should be between 200.00 W and 700.00 W" in (
        too_low.stderr
    )
    lab.ssh(host, "nvidia-smi -i 1 -pl 450 && nvidia-smi -pm 1")
    limits = lab.ssh(
        host, "nvidia-smi --query-gpu=power.limit,persistence_mode --format=csv,noheader,nounits"
    ).stdout.split("\n")
    assert limits[:2] == ["700.00, Enabled", "450.00, Enabled"]

    package = lab.ssh(host, "dpkg-query -W -f='${Version} ${Description}' nvidia-driver-sim")
    assert package.stdout.startswith("550.127.05-1~ecohashsim1 SIMULATED")


def test_l40s_nodes_simulate_their_own_hardware(lab: Lab) -> None:
    host = "c02-r01-n01"
    lab.use_site_mirror(host)
    lab.ssh(host, "apt-get update -q && apt-get install -y -q nvidia-driver-sim")
    listing = lab.ssh(host, "nvidia-smi -L").stdout.splitlines()
    assert [line.split(" (UUID")[0] for line in listing] == [
        "GPU 0: NVIDIA L40S",
        "GPU 1: NVIDIA L40S",
    ]


def test_inventory_describes_the_running_hosts(lab: Lab) -> None:
    assert resolve_site("lab") == inventory_file()
    text = inventory_file().read_text()
    assert text.startswith("# Generated by `ecohash lab up`")
    site = yaml.safe_load(text)
    addresses = {
        node["name"]: node["mgmt_ip"]
        for container in site["spec"]["containers"]
        for rack in container["racks"]
        for node in rack["nodes"]
    }
    assert addresses == {h.name: h.address for h in lab.status().hosts}


def test_status_shows_a_dead_host_as_down(lab: Lab) -> None:
    victim = lab.host_names[-1]
    # A crash: every process of the host killed at once, its systemd included.
    crashed = [p for p in map(process.TrackedProcess.find, cgroups.process_ids(victim)) if p]
    assert crashed
    process.kill_all(crashed)
    states = {h.name: h.state for h in lab.status().hosts}
    assert states[victim] == "down"
    assert sorted(set(states.values())) == ["down", "up"]


def test_a_host_whose_nspawn_was_killed_is_down_and_down_still_removes_it(lab: Lab) -> None:
    record = state.load(lab.paths.state_file)
    assert record is not None
    victim = record.hosts[0]
    assert victim.process is not None
    os.kill(victim.process.pid, signal.SIGKILL)
    process.stop_all([victim.process], grace_s=5)
    assert {h.name: h.state for h in lab.status().hosts}[victim.name] == "down"
    # Its systemd lives on, reparented; only its cgroup still finds it.
    assert cgroups.process_ids(victim.name)
    lab_library.down()
    assert_nothing_left(lab)
    lab.up()


def test_up_over_an_existing_lab_recreates_it(lab: Lab) -> None:
    status = lab.up()
    assert [h.state for h in status.hosts] == ["up"] * lab.nodes
    assert len(network.lab_namespaces()) == lab.nodes
    # One nspawn per host, and the lab's three daemons: the apt proxy, the mirror, the registry.
    record = state.load(lab.paths.state_file)
    assert record is not None
    daemons = [record.proxy, record.mirror, record.registry]
    assert all(daemon is not None and daemon.is_alive() for daemon in daemons)
    assert len(process.processes_rooted_under(lab.paths.run)) == lab.nodes + len(daemons)


def test_down_cleans_a_half_built_lab(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    real_add = network.add_host_network
    calls = []

    def fail_on_third_host(netns: str, veth: str, address: str) -> None:
        calls.append(netns)
        if len(calls) == 3:
            raise EcohashError("simulated failure while wiring the third host")
        real_add(netns, veth, address)

    lab_library.down()
    with monkeypatch.context() as patch:
        patch.setattr(network, "add_host_network", fail_on_third_host)
        # up's own cleanup after a failure is disabled, to leave a genuinely half-built lab.
        original_down = lifecycle._down
        patch.setattr(lifecycle, "_down", lambda paths: None)
        with pytest.raises(EcohashError, match="third host"):
            lab_library.up(nodes=lab.nodes, containers=lab.containers)
        patch.setattr(lifecycle, "_down", original_down)
        # Hosts 1 and 2 started before the failure; tear everything down from there.
        assert len(network.lab_namespaces()) == 2
        lab_library.down()
    assert_nothing_left(lab)
    lab.up()


def test_down_leaves_nothing_behind(lab: Lab) -> None:
    lab_library.down()
    assert_nothing_left(lab)
    assert lab.status().hosts == []
    # Later tests in the session (roles, rollouts) get the lab back.
    lab.up()


def assert_nothing_left(lab: Lab) -> None:
    assert mounts.mounts_under(lab.paths.root) == []
    assert network.lab_namespaces() == []
    assert network.lab_links() == []
    assert not Path(f"/sys/class/net/{BRIDGE_NAME}").exists()
    assert process.processes_rooted_under(lab.paths.run) == []
    assert not lab.paths.run.exists()
    assert not hosts.NSPAWN_RUN_DIR.exists()
    if not lab.run_netns_was_mounted:
        assert not network.run_netns_is_mounted()
    assert not inventory_file().exists()
    assert cgroups.leftover_groups() == []
    assert cgroups.process_ids() == []
