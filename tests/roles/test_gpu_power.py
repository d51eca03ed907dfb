"""gpu_power: each node's cap from the site budget, applied now, by a unit at boot and by a
timer every 30 s; a curtailment's override, with its expiry, honoured by all three."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.roles.bootstraps import LAB_HOSTS, Bootstrapped, host_results
from tests.roles.rounds import CURTAILED_HOST, EXPIRING_HOST, GPU_LIMITS, CheckRun, FaultRounds

pytestmark = pytest.mark.lab

CAPS = {"c01-r01-n01": 450, "c01-r01-n02": 450, "c02-r01-n01": 350, "c02-r01-n02": 350}


@pytest.mark.parametrize("name", LAB_HOSTS)
def test_cap_file_unit_timer_and_persistence(bootstrapped: Bootstrapped, name: str) -> None:
    host = bootstrapped.host(name)
    assert f"ECOHASH_GPU_CAP_W={CAPS[name]}" in host.file("/etc/ecohash/gpu-power.env").content_string
    assert host.service("ecohash-gpu-power").is_enabled
    timer = host.service("ecohash-gpu-power.timer")
    assert timer.is_enabled and timer.is_running
    modes = host.check_output("nvidia-smi --query-gpu=persistence_mode --format=csv,noheader")
    assert modes.splitlines() == ["Enabled", "Enabled"]


def test_the_boot_unit_applies_the_cap_by_itself(bootstrapped: Bootstrapped) -> None:
    name = "c01-r01-n02"
    bootstrapped.lab.ssh(name, "nvidia-smi -pl 700 && nvidia-smi -pm 0")
    # What systemd runs at boot, run the way it does at boot.
    bootstrapped.lab.ssh(name, "systemctl restart ecohash-gpu-power")
    limits = bootstrapped.lab.ssh(name, GPU_LIMITS).stdout.splitlines()
    assert limits == ["450.00, Enabled", "450.00, Enabled"]


@pytest.fixture
def curtailed(bootstrapped: Bootstrapped) -> Iterator[dict]:
    """CURTAILED_HOST under an override to 300 W until released; released afterwards whatever happens."""
    done = bootstrapped.lab.ssh(
        CURTAILED_HOST, "ecohash-gpu-power curtail --cap 300 --until 0 --event lab-test-1"
    )
    try:
        yield json.loads(done.stdout)
    finally:
        bootstrapped.lab.ssh(CURTAILED_HOST, "ecohash-gpu-power release")


def test_a_curtailed_host_reset_by_hand_comes_back_curtailed_at_boot(
    bootstrapped: Bootstrapped, curtailed: dict
) -> None:
    assert curtailed["override"]["event"] == "lab-test-1"
    assert [gpu["enforced_w"] for gpu in curtailed["gpus"]] == [300.0, 300.0]
    assert [gpu["draw_w"] for gpu in curtailed["gpus"]] == [300.0, 300.0]  # flat out, so capped
    bootstrapped.lab.ssh(CURTAILED_HOST, "nvidia-smi -pl 700 && nvidia-smi -pm 0")
    bootstrapped.lab.ssh(CURTAILED_HOST, "systemctl restart ecohash-gpu-power.service")
    assert bootstrapped.lab.ssh(CURTAILED_HOST, GPU_LIMITS).stdout.splitlines() == ["300.00, Enabled"] * 2


def test_check_mode_during_a_curtailment_finds_nothing_for_gpu_power_to_change(check_run: CheckRun) -> None:
    assert check_run.curtailment["override"]["event"] == "lab-test-check"
    # This role's answer; node_health's verdict on the curtailed limit is its own (it reads
    # the same override through `ecohash-gpu-power read`).
    results = [e for e in host_results(check_run.run)
               if e.get("role") == "gpu_power" and e["host"] == CURTAILED_HOST]
    assert "Read the GPUs' limits and persistence mode, and any curtailment in force" in [
        e["task"] for e in results
    ], check_run.run.output
    assert [e["task"] for e in results if e["res"].get("changed") or e["res"].get("failed")] == []
    assert check_run.curtailed_limits == ["300.00, Enabled"] * 2


def test_an_expired_override_ends_on_its_own(faults: FaultRounds) -> None:
    expired = faults.expired
    assert expired.limits_during == ["300.00, Enabled"] * 2
    # Nobody ran anything on the host (the rounds ran on the other hosts): its timer ended the event.
    assert expired.removed, "the timer did not remove the expired override within 45 s of its end"
    assert expired.limits_after == [f"{CAPS[EXPIRING_HOST]}.00, Enabled"] * 2
    assert f"event lab-test-expiring's override expired at {expired.until}: removed" in expired.journal
