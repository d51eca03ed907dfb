"""container_runtime: containerd and runc at the standard's versions, NVIDIA runtime default."""

from __future__ import annotations

import pytest

from ecohash.standard import load_standard
from tests.roles.conftest import LAB_HOSTS, Bootstrapped

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
