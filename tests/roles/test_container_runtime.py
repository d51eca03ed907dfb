"""container_runtime: containerd and runc at the standard's versions, NVIDIA runtime default."""

from __future__ import annotations

import pytest

from ecohash.standard import load_standard
from tests.roles.bootstraps import LAB_HOSTS, Bootstrapped
from tests.roles.registry import LAB_REGISTRY, REGISTRY_HOST
from tests.roles.rounds import CERTS_D, REGISTRY_NODE, ChangedAndBack

pytestmark = pytest.mark.lab


@pytest.mark.parametrize("name", LAB_HOSTS)
def test_containerd_and_runc_are_the_pinned_versions_and_running(
    bootstrapped: Bootstrapped, name: str
) -> None:
    pinned = load_standard().containerd["debian12"]
    host = bootstrapped.host(name)
    for package in ("containerd", "runc"):
        assert host.package(package).version == pinned[package].version
    assert host.service("containerd").is_enabled
    assert host.service("containerd").is_running
    # containerd loaded the configuration the role wrote: the CRI plugin's default runtime.
    config = host.check_output("containerd config dump")
    assert 'default_runtime_name = "nvidia"' in config
    assert 'BinaryName = "/usr/bin/nvidia-container-runtime"' in config


def test_simulated_toolkit_is_installed_and_hands_containers_to_runc(bootstrapped: Bootstrapped) -> None:
    host = bootstrapped.host("c02-r01-n01")
    assert host.package("nvidia-container-toolkit-sim").version == "1.17.8-1~ecohashsim1"
    assert "SIMULATED" in host.check_output("nvidia-ctk --version")
    # The stand-in runtime is runc underneath: it answers runc's own --version.
    assert "runc version 1.1.5" in host.check_output("nvidia-container-runtime --version")


def test_the_site_registry_is_configured_for_containerd_and_removed_with_it(
    bootstrapped: Bootstrapped, changed_and_back: ChangedAndBack,
) -> None:
    name, lab = REGISTRY_NODE, bootstrapped.lab
    host = bootstrapped.host(name)
    # The lab's site file names its registry: bootstrap configured containerd for it.
    own = host.file(f"{CERTS_D}/{REGISTRY_HOST}/hosts.toml").content_string
    assert f'server = "{LAB_REGISTRY}"\n' in own and f'[host."{LAB_REGISTRY}"]' in own
    assert f'[host."{LAB_REGISTRY}"]' in host.file(f"{CERTS_D}/nvcr.io/hosts.toml").content_string
    # containerd takes the file (it logs one it cannot decode and goes on with https) and
    # asks docker-registry over plain http: it answers that it has no such repository.
    pull = lab.ssh(name, f"ctr images pull --hosts-dir {CERTS_D} {REGISTRY_HOST}/ecohash/absent:1", check=False)
    assert pull.returncode != 0
    assert "not found" in pull.stderr, pull.stderr
    assert "hosts.toml" not in pull.stderr and "TLS" not in pull.stderr, pull.stderr
    # A run on a site that names no registry removed all of it; one on the site as it was put it back.
    runs = changed_and_back
    assert runs.changed.returncode == 0, runs.changed.output
    assert runs.registry_dirs_changed == []
    assert runs.back.returncode == 0, runs.back.output
    assert runs.registry_file_back
    assert runs.again.summary["hosts"][name]["changed"] == 0
