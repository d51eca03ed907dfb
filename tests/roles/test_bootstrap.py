"""`ecohash bootstrap lab` against the issue: converge, change nothing the second time,
caps equal to the plan, secrets kept out of artifacts, and a dead node stops nothing."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from ecohash.paths import facts_dir, state_dir
from tests.roles.bootstraps import (
    ECOHASH,
    INSTALLED_RUN_HOST,
    LAB_HOSTS,
    Bootstrapped,
    BootstrapRun,
    host_results,
    run_bootstrap,
)
from tests.roles.rounds import CONVERGED_HOST, CURTAILED_HOST, CheckRun

pytestmark = pytest.mark.lab


def test_first_bootstrap_converges_every_host_and_each_passes_acceptance(
    bootstrapped: Bootstrapped,
) -> None:
    hosts = bootstrapped.first.summary["hosts"]
    assert sorted(hosts) == LAB_HOSTS
    assert bootstrapped.first.summary["failed_hosts"] == []
    for name, host in hosts.items():
        assert host["changed"] > 10, name  # it really installed and configured things
        assert host["health"]["passed"] is True, name
        # The lab's standard is simulated, and the verdict says so.
        assert host["health"]["simulated"] is True, name


def test_second_bootstrap_changes_nothing_on_any_host(bootstrapped: Bootstrapped) -> None:
    hosts = bootstrapped.second.summary["hosts"]
    assert sorted(hosts) == LAB_HOSTS
    assert {name: host["changed"] for name, host in hosts.items()} == dict.fromkeys(LAB_HOSTS, 0)
    assert all(host["ok"] > 40 for host in hosts.values())


def test_the_installed_collection_through_an_awx_source_file_changes_nothing(
        bootstrapped: Bootstrapped) -> None:
    run = bootstrapped.installed
    assert run.returncode == 0, run.output[-5000:]
    recap = dict(re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", run.output, re.MULTILINE))
    assert recap == {INSTALLED_RUN_HOST: "0"}, run.output[-5000:]
    # Every role task came from the installed copy, none from this checkout.
    paths = re.findall(r"^task path: (\S+)", run.output, re.MULTILINE)
    role_paths = [path for path in paths if "/roles/" in path]
    installed = f"{run.collections}/ansible_collections/ecohash/site/roles/"
    assert role_paths and all(path.startswith(installed) for path in role_paths), sorted(set(role_paths))[:5]
    assert all(path.startswith(str(run.collections)) for path in paths), sorted(set(paths))[:5]


def test_the_second_run_reads_facts_from_the_sites_cache(bootstrapped: Bootstrapped) -> None:
    def gathered(run: BootstrapRun) -> set[str]:
        return {e["host"] for e in host_results(run) if e["task"] == "Gathering Facts"}

    assert gathered(bootstrapped.first) == set(LAB_HOSTS)
    assert gathered(bootstrapped.second) == set()
    # One file per host (ansible-core names it with a schema prefix, e.g. s1_c01-r01-n01).
    cached = [path.name for path in facts_dir("lab").iterdir()]
    assert [name for name in LAB_HOSTS if any(f.endswith(name) for f in cached)] == LAB_HOSTS


def test_every_gpu_reports_the_cap_ecohash_plan_computed(bootstrapped: Bootstrapped) -> None:
    plan = json.loads(subprocess.run(
        [ECOHASH, "plan", "lab", "--json"], capture_output=True, text=True, check=True,
    ).stdout)  # fmt: skip
    caps = {node["name"]: node["gpu_cap_w"] for node in plan["nodes"]}
    assert caps["c01-r01-n01"] < 700  # the lab's H100 container really is capped
    for name in LAB_HOSTS:
        reported = bootstrapped.lab.ssh(
            name, "nvidia-smi --query-gpu=power.limit --format=csv,noheader,nounits"
        ).stdout.split()
        assert reported == [f"{caps[name]:.2f}"] * 2, name


def test_join_token_never_reaches_run_artifacts_or_logs(bootstrapped: Bootstrapped) -> None:
    token_file = state_dir() / "secrets" / "lab" / "k3s-token"
    token = token_file.read_text().strip()
    assert len(token) == 64
    assert token_file.stat().st_mode & 0o077 == 0
    assert token_file.parent.stat().st_mode & 0o077 == 0
    for run in (bootstrapped.first, bootstrapped.second):
        assert token not in run.output
        for path in run.directory.rglob("*"):
            if path.is_file():
                assert token not in path.read_text(errors="replace"), path
    node = bootstrapped.host("c01-r01-n02")
    on_node = node.file("/etc/rancher/k3s/token")
    assert on_node.content_string.strip() == token
    assert on_node.mode == 0o600
    assert token not in node.file("/etc/rancher/k3s/config.yaml").content_string
    assert token not in bootstrapped.lab.ssh("c01-r01-n02", "journalctl --no-pager -q").stdout


def test_check_mode_on_a_converged_node_reports_no_change(check_run: CheckRun) -> None:
    run = check_run.run
    assert run.returncode == 0, run.output
    assert sorted(run.summary["hosts"]) == sorted([CONVERGED_HOST, CURTAILED_HOST])
    assert run.summary["hosts"][CONVERGED_HOST]["changed"] == 0


def test_a_dead_node_is_reported_and_the_others_still_converge(bootstrapped: Bootstrapped) -> None:
    dead, alive = "c02-r01-n02", "c02-r01-n01"
    netns = f"ecolab-{dead}"
    subprocess.run(["ip", "-n", netns, "link", "set", "eth0", "down"], check=True)
    try:
        # Undo settings on the live node so this run has real work to do there: the cap
        # timer stopped (it would put the limit back within 30 s) and a limit set by hand.
        bootstrapped.lab.ssh(alive, "systemctl stop ecohash-gpu-power.timer ecohash-gpu-power.service && nvidia-smi -pl 300")
        run = run_bootstrap("--limit", f"{dead},{alive}")
    finally:
        subprocess.run(["ip", "-n", netns, "link", "set", "eth0", "up"], check=True)
    assert run.returncode == 1
    assert run.summary["failed_hosts"] == [dead]
    assert "did not converge: c02-r01-n02" in run.output
    assert run.summary["hosts"][alive]["failed"] == 0
    # The timer started again; starting it may run the cap unit at once, before the role
    # compares the limits, so the cap is applied by one or the other.
    assert run.summary["hosts"][alive]["changed"] >= 1
    reported = bootstrapped.lab.ssh(
        alive, "nvidia-smi --query-gpu=power.limit --format=csv,noheader,nounits"
    ).stdout.split()
    assert reported == ["350.00", "350.00"]


def test_a_node_answering_with_an_unknown_host_key_is_refused(bootstrapped: Bootstrapped) -> None:
    known_hosts = bootstrapped.lab.paths.known_hosts
    original = known_hosts.read_text()
    name = "c02-r01-n01"
    impostor_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIvNnJyiDUJp0x9qAf6V0E1Ys9ub8KKkPS3CSPb1qJ4y"
    lines = [
        f"{line.split()[0]} {impostor_key}" if line.startswith(f"{name},") else line
        for line in original.splitlines()
    ]
    known_hosts.write_text("\n".join(lines) + "\n")
    # Ansible's SSH master connection from an earlier run would skip the key exchange.
    subprocess.run(
        ["ssh", "-O", "exit", "-o", "ControlPath=~/.ansible/cp/%C", "-o", "User=root",
         "-p", "22", "10.213.0.13"], capture_output=True, check=False,
    )  # fmt: skip
    try:
        run = run_bootstrap("--limit", name)
    finally:
        known_hosts.write_text(original)
    assert run.returncode == 1
    assert run.summary["failed_hosts"] == [name]
    assert run.summary["hosts"][name]["changed"] == 0
