"""gpu_power: each node's cap from the site budget, applied now and by a unit at boot."""

from __future__ import annotations

import pytest

from tests.roles.conftest import LAB_HOSTS, Bootstrapped

pytestmark = pytest.mark.lab

CAPS = {"c01-r01-n01": 450, "c01-r01-n02": 450, "c02-r01-n01": 350, "c02-r01-n02": 350}


@pytest.mark.parametrize("name", LAB_HOSTS)
def test_cap_file_unit_and_persistence(bootstrapped: Bootstrapped, name: str) -> None:
    host = bootstrapped.host(name)
    assert f"ECOHASH_GPU_CAP_W={CAPS[name]}" in host.file("/etc/ecohash/gpu-power.env").content_string
    assert host.service("ecohash-gpu-power").is_enabled
    modes = host.check_output("nvidia-smi --query-gpu=persistence_mode --format=csv,noheader")
    assert modes.splitlines() == ["Enabled", "Enabled"]


def test_the_boot_unit_applies_the_cap_by_itself(bootstrapped: Bootstrapped) -> None:
    name = "c01-r01-n02"
    bootstrapped.lab.ssh(name, "nvidia-smi -pl 700 && nvidia-smi -pm 0")
    # What systemd runs at boot, run the way it does at boot.
    bootstrapped.lab.ssh(name, "systemctl restart ecohash-gpu-power")
    limits = bootstrapped.lab.ssh(
        name, "nvidia-smi --query-gpu=power.limit,persistence_mode --format=csv,noheader,nounits"
    ).stdout.splitlines()
    assert limits == ["450.00, Enabled", "450.00, Enabled"]
