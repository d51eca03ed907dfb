"""`ecohash curtail` on the lab, through the real CLI: caps over SSH, read back, held, released.

The lab's site is given two flex tiers for the module (c02 flex 3, c01 flex 1), so a cut
deep enough reaches both and a release has steps. The lab's GPUs are SIMULATED (draw =
min(demand, enforced limit)); everything else is real: SSH with host keys checked, the
node script, its override and boot unit, drift's Ansible check run. Every change is undone
at the end: the site file, a host cut off, the event released.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from ecohash.budget import compile_budget
from ecohash.grid.events import event_dir
from ecohash.grid.rule import solve, target_for
from ecohash.inventory import load_site
from ecohash.paths import state_dir
from tests.labhosts import Lab
from tests.roles.bootstraps import ECOHASH, LAB_HOSTS

pytestmark = pytest.mark.lab

SITE_FILE = state_dir() / "inventories" / "lab" / "site.yaml"
TARGET_MW = "0.003"  # 3 kW: below what flex 3 alone can give, so flex 1 goes lower too
CUT_OFF = "c02-r01-n02"
OVERRIDE = "/etc/ecohash/gpu-power-override.json"


def ecohash(*arguments: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ECOHASH, *arguments], capture_output=True, text=True, timeout=timeout, check=False)


def enforced(lab: Lab, node: str) -> list[float]:
    out = lab.ssh(node, "nvidia-smi --query-gpu=enforced.power.limit --format=csv,noheader,nounits").stdout
    return [float(value) for value in out.split()]


def expected_caps(held: dict[str, int] | None = None) -> dict[str, int]:
    plan = compile_budget(load_site(SITE_FILE))
    return solve(plan, target_for(plan, to_mw=Decimal(TARGET_MW)), held).caps_w


def planned_caps() -> dict[str, int]:
    plan = json.loads(ecohash("plan", "lab", "--json").stdout)
    return {node["name"]: node["gpu_cap_w"] for node in plan["nodes"]}


def curtail(*arguments: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    result = ecohash("curtail", "lab", *arguments, "--json")
    assert result.stdout, result.stderr
    return result, json.loads(result.stdout)


@pytest.fixture(scope="module")
def two_tiers(provisioned_lab: Lab) -> Iterator[Lab]:
    lab = provisioned_lab
    original = SITE_FILE.read_text()
    assert original.count("- name: c02\n") == 1
    indent = original.split("- name: c02\n")[1].split("cooling")[0]
    SITE_FILE.write_text(original.replace("- name: c02\n", f"- name: c02\n{indent}flex: 3\n"))
    try:
        yield lab
    finally:
        SITE_FILE.write_text(original)
        ecohash("curtail", "lab", "--release")


def test_a_cut_below_the_plan_is_enforced_on_every_gpu_in_seconds(two_tiers: Lab) -> None:
    lab = two_tiers
    planned, expected = planned_caps(), expected_caps()
    # Both tiers reach below their plan: flex 3 (c02) to its floors, flex 1 (c01) binds.
    assert all(expected[name] < planned[name] for name in LAB_HOSTS)
    # The dry run reads every GPU's draw live: the lab's host keys are known.
    dry = json.loads(ecohash("curtail", "lab", "--to", TARGET_MW, "--dry-run", "--json").stdout)
    assert dry["measured"]["nodes"] == len(LAB_HOSTS) and dry["measured"]["gpus"] == 2 * len(LAB_HOSTS)
    assert "measured_not_read" not in dry
    result, data = curtail("--to", TARGET_MW)
    assert result.returncode == 0, result.stdout + result.stderr
    event = data["event"]
    assert data["ok"] is True and event["state"] == "active"
    for name in LAB_HOSTS:
        assert enforced(lab, name) == [float(expected[name])] * 2, name
        override = json.loads(lab.ssh(name, f"cat {OVERRIDE}").stdout)
        assert (override["event"], override["cap_w"], override["until"]) == (event["id"], expected[name], 0)
    assert event["verified_s"] < 5
    assert event["below_target_s"] is not None
    status = ecohash("status", "lab")
    assert f"curtailment event {event['id']} active: to {TARGET_MW} MW" in status.stdout
    # A node whose limits are reset comes back curtailed from its boot unit.
    node = "c01-r01-n01"
    lab.ssh(node, f"nvidia-smi -pl {planned[node]}")
    assert enforced(lab, node) == [float(planned[node])] * 2
    lab.ssh(node, "systemctl restart ecohash-gpu-power.service")
    assert enforced(lab, node) == [float(expected[node])] * 2


def test_drift_is_clean_during_the_event(two_tiers: Lab) -> None:
    result = ecohash("drift", "lab", timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("curtailment event ")
    assert "lab: 0 node(s) drifted, 4 in standard, 0 not checked" in result.stdout


def test_a_provision_during_the_event_keeps_it(two_tiers: Lab) -> None:
    lab = two_tiers
    expected = expected_caps()
    node = "c01-r01-n02"
    event_id = json.loads(ecohash("curtail", "lab", "--status", "--json").stdout)["event"]["id"]
    # --force: the node is standard already, and a skipped node would prove nothing.
    result = ecohash("provision", "lab", "--force", "--limit", node, "--canary", "0", timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    assert enforced(lab, node) == [float(expected[node])] * 2
    override = json.loads(lab.ssh(node, f"cat {OVERRIDE}").stdout)
    assert (override["event"], override["cap_w"]) == (event_id, expected[node])
    status = json.loads(ecohash("curtail", "lab", "--status", "--json").stdout)
    assert status["event"]["id"] == event_id and status["event"]["state"] == "active"


def test_a_release_with_a_ramp_raises_caps_tier_by_tier_to_the_plan(two_tiers: Lab) -> None:
    lab = two_tiers
    planned, expected = planned_caps(), expected_caps()
    event_id = json.loads(ecohash("curtail", "lab", "--status", "--json").stdout)["event"]["id"]
    result, data = curtail("--release", "--ramp", "4s")
    assert result.returncode == 0, result.stdout + result.stderr
    assert data["ok"] is True and data["event"]["status"] == "released"
    assert "release step 1/2 at 0 s" in result.stderr and "release step 2/2 at 4 s" in result.stderr
    for name in LAB_HOSTS:
        assert enforced(lab, name) == [float(planned[name])] * 2
        assert lab.ssh(name, f"test -e {OVERRIDE}", check=False).returncode == 1
    # The samples saw flex 1 (c01) back at its plan while flex 3 (c02) still held the event's cap.
    rounds = [json.loads(line) for line in
              (event_dir("lab", event_id) / "samples.jsonl").read_text().splitlines()]

    def limits(sample: dict[str, Any], node: str) -> set[float] | None:
        entry = sample["nodes"].get(node, {})
        return {gpu["enforced_w"] for gpu in entry["gpus"]} if "gpus" in entry else None

    between = [sample for sample in rounds if sample["phase"] == "release"
               and limits(sample, "c01-r01-n01") == {planned["c01-r01-n01"]}
               and limits(sample, "c02-r01-n01") == {expected["c02-r01-n01"]}]
    assert between, "no sample between the two steps"


def test_a_host_cut_off_is_held_named_and_the_others_go_lower(two_tiers: Lab) -> None:
    lab = two_tiers
    planned = planned_caps()
    held = expected_caps({CUT_OFF: planned[CUT_OFF]})  # its last read-back: the release's, at plan
    assert held["c01-r01-n01"] < expected_caps()["c01-r01-n01"]
    link = ["ip", "-n", f"ecolab-{CUT_OFF}", "link", "set", "eth0"]
    subprocess.run([*link, "down"], check=True)
    try:
        result, data = curtail("--to", TARGET_MW, "--settle", "5s")
    finally:
        subprocess.run([*link, "up"], check=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert any(line.startswith(f"{CUT_OFF}: held at {planned[CUT_OFF]} W per GPU: unreachable")
               for line in data["messages"])
    assert data["event"]["held"].keys() == {CUT_OFF}
    for name in LAB_HOSTS:
        if name != CUT_OFF:
            assert enforced(lab, name) == [float(held[name])] * 2, name
    released = ecohash("curtail", "lab", "--release")
    assert released.returncode == 0, released.stdout + released.stderr
    assert enforced(lab, CUT_OFF) == [float(planned[CUT_OFF])] * 2


def test_no_event_file_holds_the_join_token_or_a_key(two_tiers: Lab) -> None:
    token = (state_dir() / "secrets" / "lab" / "k3s-token").read_text().strip()
    assert len(token) == 64
    files = [path for path in (state_dir() / "grid" / "lab").rglob("*") if path.is_file()]
    assert len(files) >= 6  # event.json, and per event: event.json, samples, report.json and .html
    for path in files:
        text = path.read_text(errors="replace")
        assert token not in text, path
        assert "PRIVATE KEY" not in text, path
        assert oct(path.stat().st_mode & 0o777) == "0o600", path

