"""`ecohash plan --detailed-exitcode` and `ecohash drift` on the lab, through the real CLI.

After a provision: plan exits 0. A managed file edited by hand and a GPU power limit
set by hand on the two hosts of one container: drift exits 2 naming each host and what
drifted, and finds the other container's two in standard (plan, which reads no host,
still exits 0). An inventory edit of that other container: plan exits 2 naming the
nodes' new caps and the objects, and drift finds the same on the hosts and in the
render, and the first container's two in standard. Between them the two drifts show
every node of the provisioned lab in standard (a drift over the lab takes most of a
minute, so no third one shows only that). Every edit is undone afterwards, so the lab
stays standard.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from ecohash.paths import state_dir
from tests.labhosts import Lab
from tests.roles.bootstraps import ECOHASH, LAB_HOSTS

pytestmark = pytest.mark.lab

# Both in c02, whose cooling the inventory edit leaves alone: c01's two are drifted only
# by the edit, and each drift shows the other container's nodes in standard.
FILE_HOST, POWER_HOST = "c02-r01-n01", "c02-r01-n02"
MANAGED_FILE = "/etc/ecohash/gpu-power.env"
DRIFT_MARKER = "drift report: "


def ecohash(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ECOHASH, *arguments], capture_output=True, text=True, timeout=900, check=False)


def drift(*options: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """`ecohash drift lab` as a person reads it, and the drift.json it names."""
    result = ecohash("drift", "lab", *options)
    return result, drift_report(result)


def drift_report(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The drift.json a drift's output names."""
    lines = [line for line in result.stdout.splitlines() if line.startswith(DRIFT_MARKER)]
    assert lines, result.stdout + result.stderr
    return json.loads(Path(lines[-1][len(DRIFT_MARKER):]).read_text())


def nodes_by_status(report: dict[str, Any]) -> dict[str, str]:
    return {node["name"]: node["status"] for node in report["nodes"]}


def caps() -> dict[str, int]:
    plan = json.loads(ecohash("plan", "lab", "--json").stdout)
    return {node["name"]: node["gpu_cap_w"] for node in plan["nodes"]}


@pytest.fixture(scope="module")
def provisioned(provisioned_lab: Lab) -> Lab:
    # The session's provisioned lab; a provision does whatever earlier tests left undone.
    result = ecohash("provision", "lab")
    assert result.returncode == 0, result.stdout + result.stderr
    return provisioned_lab


@contextmanager
def edited_site(old: str, new: str) -> Iterator[Path]:
    site_file = state_dir() / "inventories" / "lab" / "site.yaml"
    original = site_file.read_text()
    assert original.count(old) == 1, old
    site_file.write_text(original.replace(old, new))
    try:
        yield site_file
    finally:
        site_file.write_text(original)


def test_after_provision_nothing_is_pending(provisioned: Lab) -> None:
    plan = ecohash("plan", "lab", "--detailed-exitcode")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "none: every node passed" in plan.stdout
    state = json.loads((state_dir() / "rollouts" / "lab" / "state.json").read_text())
    assert state["stack"]["action"] == "rendered" and len(state["stack"]["objects"]) > 10
    planned = caps()
    assert all(node["vars"]["ecohash_gpu_cap_w"] == planned[name] for name, node in state["nodes"].items())


def test_a_hand_edited_file_and_a_hand_set_power_limit_are_drift(provisioned: Lab) -> None:
    lab = provisioned
    original_file = lab.ssh(FILE_HOST, f"cat {MANAGED_FILE}").stdout
    planned_cap = caps()[POWER_HOST]
    lab.ssh(FILE_HOST, f"sed -i 's/^ECOHASH_GPU_CAP_W=.*/ECOHASH_GPU_CAP_W=999/' {MANAGED_FILE}")
    # The cap timer puts a hand-set limit back within 30 s; one someone set where it was
    # stopped stays, and drift names both. The service is stopped too: a run the timer
    # started just before would otherwise put the limit back after it was set.
    lab.ssh(POWER_HOST, "systemctl stop ecohash-gpu-power.timer ecohash-gpu-power.service && nvidia-smi -pl 300")
    try:
        # In two jobs (the Kubernetes server and its container's node, the other
        # container's two): the findings are those of one job, which the other tests run.
        result, report = drift("--shards", "2")
        plan = ecohash("plan", "lab", "--detailed-exitcode")
    finally:
        lab.ssh(FILE_HOST, f"cat > {MANAGED_FILE}", input_bytes=original_file.encode())
        lab.ssh(POWER_HOST, f"nvidia-smi -pl {planned_cap} && systemctl start ecohash-gpu-power.timer")
    assert result.returncode == 2, result.stdout + result.stderr
    out = result.stdout
    assert f"{FILE_HOST}: drifted" in out
    assert f"would change {MANAGED_FILE}: gpu_power: Record the cap the site budget sets for this node" in out
    assert "-ECOHASH_GPU_CAP_W=999" in out and f"+ECOHASH_GPU_CAP_W={caps()[FILE_HOST]}" in out
    assert f"{POWER_HOST}: drifted" in out
    assert (f"acceptance check power_limit_w: found ['300.00', '300.00'], expected {planned_cap}") in out
    assert "would change: gpu_power: Apply the cap where any GPU differs from it" in out
    assert "would change: gpu_power: Start the timer now and at every boot" in out
    # c01's two, untouched since the provision, are in standard; so is the render.
    assert nodes_by_status(report) == {**dict.fromkeys(LAB_HOSTS, "in-standard"),
                                       FILE_HOST: "drifted", POWER_HOST: "drifted"}
    assert f"{report['site']}: 2 node(s) drifted, 2 in standard, 0 not checked" in out
    assert report["stack"]["method"] == "render" and report["stack"]["objects"] == []
    jobs = sorted(Path(report["directory"]).glob("shard-*/hosts.limit"))
    assert [job.read_text().split() for job in jobs] == [LAB_HOSTS[:2], LAB_HOSTS[2:]]
    # plan compares the inventory with recorded state; it reads no host.
    assert plan.returncode == 0
    token = (state_dir() / "secrets" / "lab" / "k3s-token").read_text().strip()
    directory = Path(report["directory"])
    texts = [out, result.stderr] + [p.read_text(errors="replace") for p in directory.rglob("*") if p.is_file()]
    assert all(token not in text for text in texts)


def test_an_inventory_edit_is_a_pending_change_and_drift(provisioned: Lab) -> None:
    before = caps()
    # c01's cooling binds its caps: less of it lowers the cap of both c01 nodes.
    with edited_site("cooling_kw: 2.4", "cooling_kw: 2.2"):
        after = caps()
        plan = ecohash("plan", "lab", "--detailed-exitcode")
        result, report = drift()
    changed = sorted(name for name in LAB_HOSTS if after[name] != before[name])
    assert changed == ["c01-r01-n01", "c01-r01-n02"] and all(after[n] < before[n] for n in changed)
    assert plan.returncode == 2, plan.stdout + plan.stderr
    for name in changed:
        assert f"node {name}: update: inventory variables changed" in plan.stdout
        assert f"ecohash_gpu_cap_w: {before[name]} -> {after[name]}" in plan.stdout
    assert "object ConfigMap ecohash-system/power-budget-c01: update" in plan.stdout
    assert result.returncode == 2, result.stdout + result.stderr
    # c02's two, put back by hand after the test above, are in standard again.
    assert nodes_by_status(report) == {**dict.fromkeys(LAB_HOSTS, "in-standard"), **dict.fromkeys(changed, "drifted")}
    for node in report["nodes"]:
        if node["name"] in changed:
            assert MANAGED_FILE in [change["path"] for change in node["changes"]]
    objects = {(o["file"], o["action"]) for o in report["stack"]["objects"]}
    assert ("ecohash-system/configmap-power-budget-c01.yaml", "update") in objects
    # The edit undone: nothing pending again.
    assert ecohash("plan", "lab", "--detailed-exitcode").returncode == 0
