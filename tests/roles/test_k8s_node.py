"""k8s_node: verified k3s binary, rendered configuration, enabled unit (SIMULATED k3s).

A lab host cannot form a Kubernetes cluster, and the lab has no route to GitHub: the
binary is the lab's SIMULATED stand-in, served from the mirror and verified against the
lab standard's sha256 through the production tasks. The join stops at the enabled unit.
"""

from __future__ import annotations

import hashlib

import pytest
import yaml

from ecohash.inventory import load_site
from ecohash.lab.layout import inventory_file
from ecohash.stack.labels import node_labels
from tests.roles.conftest import H100_HOSTS, LAB_HOSTS, SERVER, Bootstrapped

pytestmark = pytest.mark.lab


def lab_standard(bootstrapped: Bootstrapped) -> dict:
    return yaml.safe_load((bootstrapped.lab.paths.run / "node-standard.lock.yml").read_text())


@pytest.mark.parametrize("name", LAB_HOSTS)
def test_binary_matches_the_standards_sha256(bootstrapped: Bootstrapped, name: str) -> None:
    standard = lab_standard(bootstrapped)
    binary = bootstrapped.host(name).file("/usr/local/bin/k3s")
    assert binary.mode == 0o755
    assert binary.sha256sum == standard["k3s"]["sha256"]
    served = bootstrapped.lab.paths.mirror_dir / "files" / "k3s" / standard["k3s"]["version"] / "k3s"
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
    # Simulated k3s is never started: it cannot run, and must not pretend to.
    assert not host.service("k3s-agent").is_running


def test_a_tampered_binary_is_replaced_by_the_verified_one(bootstrapped: Bootstrapped) -> None:
    from tests.roles.conftest import run_bootstrap

    name = H100_HOSTS[1]
    bootstrapped.lab.ssh(name, "echo tampered >> /usr/local/bin/k3s")
    run = run_bootstrap("--limit", name)
    assert run.returncode == 0, run.output
    assert run.summary["hosts"][name]["changed"] == 1
    binary = bootstrapped.host(name).file("/usr/local/bin/k3s")
    assert binary.sha256sum == lab_standard(bootstrapped)["k3s"]["sha256"]
