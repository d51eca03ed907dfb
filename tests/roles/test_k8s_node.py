"""k8s_node: verified k3s binary, rendered configuration, a joined node (SIMULATED k3s).

A lab host cannot form a Kubernetes cluster, and the lab has no route to GitHub: the
binary is the lab's SIMULATED stand-in (cli/ecohash/lab/k3s_sim.py), served from the
mirror and verified against the lab standard's sha256 through the production tasks. Its
server keeps Node objects and its agents register with it, so the join, the Node labels'
reconciliation and the kubeconfig's fetch run through the production tasks too.
"""

from __future__ import annotations

import hashlib
import stat

import pytest
import yaml

from ecohash.inventory import load_site
from ecohash.inventory.labels import LABEL_PREFIX, node_labels
from ecohash.lab.layout import inventory_file
from ecohash.paths import state_dir
from tests.roles.bootstraps import LAB_HOSTS, SERVER, Bootstrapped, cluster_nodes, verify
from tests.roles.rounds import KUBECONFIG_HOST, MOVED_TO_RACK, TAMPERED_HOST, FaultRounds, changed_tasks

pytestmark = pytest.mark.lab


def lab_standard(bootstrapped: Bootstrapped) -> dict:
    return yaml.safe_load((bootstrapped.lab.paths.run / "node-standard.lock.yml").read_text())


@pytest.mark.parametrize("name", LAB_HOSTS)
def test_binary_matches_the_standards_sha256(bootstrapped: Bootstrapped, name: str) -> None:
    standard = lab_standard(bootstrapped)
    binary = bootstrapped.host(name).file("/usr/local/bin/k3s")
    assert binary.mode == 0o755
    assert binary.sha256sum == standard["k3s"]["sha256"]
    served = bootstrapped.lab.paths.mirror_dir / "current" / "files" / "k3s" / standard["k3s"]["version"] / "k3s"
    assert binary.sha256sum == hashlib.sha256(served.read_bytes()).hexdigest()
    assert "SIMULATED" in bootstrapped.host(name).check_output("/usr/local/bin/k3s --version")


def test_server_configuration_initialises_the_cluster(bootstrapped: Bootstrapped) -> None:
    host = bootstrapped.host(SERVER)
    config = yaml.safe_load(host.file("/etc/rancher/k3s/config.yaml").content_string)
    assert config["cluster-init"] is True
    assert config["node-ip"] == "10.213.0.11"
    assert config["token-file"] == "/etc/rancher/k3s/token"
    assert config["container-runtime-endpoint"] == "unix:///run/containerd/containerd.sock"
    assert "ecohash.io/container=c01" in config["node-label"]
    # The same labels and taint the site stack's workloads select and tolerate.
    site = load_site(inventory_file())
    node = next(n for n in site.nodes if n.name == SERVER)
    container = next(c for c in site.containers if c.name == node.container)
    assert sorted(config["node-label"]) == sorted(
        f"{k}={v}" for k, v in node_labels(site.name, container, node).items())
    assert "ecohash.io/gpu-model=h100-sxm" in config["node-label"]
    assert config["node-taint"] == ["nvidia.com/gpu=present:PreferNoSchedule"]
    assert host.service("k3s").is_enabled
    assert not host.file("/etc/systemd/system/k3s-agent.service").exists


@pytest.mark.parametrize("name", [n for n in LAB_HOSTS if n != SERVER])
def test_agents_join_the_first_server(bootstrapped: Bootstrapped, name: str) -> None:
    host = bootstrapped.host(name)
    config = yaml.safe_load(host.file("/etc/rancher/k3s/config.yaml").content_string)
    assert config["server"] == "https://10.213.0.11:6443"
    assert "cluster-init" not in config
    assert host.file("/etc/rancher/k3s/config.yaml").mode == 0o600
    unit = host.file("/etc/systemd/system/k3s-agent.service").content_string
    assert "ExecStart=/usr/local/bin/k3s agent" in unit
    assert host.service("k3s-agent").is_enabled
    assert host.service("k3s-agent").is_running


def test_a_tampered_binary_is_replaced_by_the_verified_one(
    bootstrapped: Bootstrapped, faults: FaultRounds,
) -> None:
    assert faults.repair.run.returncode == 0, faults.repair.run.output
    # The verified binary back, and k3s restarted on it (the lab's SIMULATED k3s runs too).
    assert changed_tasks(faults.repair.run, TAMPERED_HOST) == [
        "Install k3s if its sha256 matches the standard", "Restart k3s"]
    binary = bootstrapped.host(TAMPERED_HOST).file("/usr/local/bin/k3s")
    assert binary.sha256sum == lab_standard(bootstrapped)["k3s"]["sha256"]


def managed_labels(node: dict) -> dict[str, str]:
    return {k: v for k, v in node["metadata"]["labels"].items() if k.startswith(LABEL_PREFIX)}


def test_every_node_joined_with_the_inventorys_labels_and_taints(bootstrapped: Bootstrapped) -> None:
    site = load_site(inventory_file())
    containers = {c.name: c for c in site.containers}
    nodes = cluster_nodes(bootstrapped.lab)
    assert sorted(nodes) == LAB_HOSTS
    for node in site.nodes:
        assert managed_labels(nodes[node.name]) == node_labels(site.name, containers[node.container], node)
        assert nodes[node.name]["spec"]["taints"] == [
            {"key": "nvidia.com/gpu", "value": "present", "effect": "PreferNoSchedule"}]


def test_the_kubeconfig_goes_to_the_secrets_directory_only(faults: FaultRounds) -> None:
    fetched = state_dir() / "secrets" / "lab" / "kubeconfig"
    assert stat.S_IMODE(fetched.stat().st_mode) == 0o600
    assert stat.S_IMODE(fetched.parent.stat().st_mode) == 0o700
    assert "https://10.213.0.11:6443" in fetched.read_text()
    # A site that names its own kubeconfig, in the inventory's directory, and the fetched
    # one removed: bootstrap only ever writes the secrets directory's.
    assert faults.repair.run.returncode == 0, faults.repair.run.output
    assert KUBECONFIG_HOST in faults.repair.run.summary["hosts"]
    assert not faults.repair.named_kubeconfig_written
    assert not faults.repair.named_kubeconfig.exists()


def test_a_moved_node_gets_its_new_labels_and_loses_stale_ones(faults: FaultRounds) -> None:
    """k3s applies node-label only at registration: the role reconciles the live Node."""
    assert faults.repair.run.returncode == 0, faults.repair.run.output
    labels = faults.repair.moved_labels
    assert labels["ecohash.io/rack"] == MOVED_TO_RACK
    assert "ecohash.io/stale" not in labels
    assert labels["example.com/theirs"] == "kept"  # not ecohash's to remove
    assert faults.repair.moved_verification.passed, faults.repair.moved_verification.reason
    assert "Node labels and taints as the inventory gives them" in [
        c.name for c in faults.repair.moved_verification.checks]
    assert faults.moved_rack_after_heal == "r01"  # back in its rack once the site was


def test_verification_finds_a_node_whose_labels_drifted(bootstrapped: Bootstrapped) -> None:
    name = "c02-r01-n01"
    lab = bootstrapped.lab
    lab.ssh(SERVER, f"k3s kubectl label --overwrite node {name} ecohash.io/container=c09")
    try:
        verification = verify(bootstrapped.lab, name)
    finally:
        lab.ssh(SERVER, f"k3s kubectl label --overwrite node {name} ecohash.io/container=c02")
    assert not verification.passed
    assert "ecohash.io/container=c09, not c02" in (verification.reason or "")
