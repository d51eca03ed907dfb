"""What plan says a rollout would change: nodes and objects against recorded rollout state."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from ecohash.ansible.inventory import planned_inventory
from ecohash.inventory import load_site
from ecohash.inventory.site import Site
from ecohash.paths import project_root
from ecohash.rollout import preflight
from ecohash.rollout.changes import (
    CREATE,
    DELETE,
    REMOVE,
    RETRY,
    UPDATE,
    node_changes,
    object_changes,
    site_changes,
)
from ecohash.rollout.provision import SKIPPED, ProvisionRequest, provision
from ecohash.rollout.state import FAILED, RolloutState
from ecohash.rollout.status import site_status
from ecohash.stack.render import checked_render
from tests.rollout.recorded import record_rollout

SITE = "nd-williston"


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ECOHASH_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


@pytest.fixture
def site_file(tmp_path: Path) -> Path:
    """A copy of a real site that a test may edit."""
    path = tmp_path / SITE / "site.yaml"
    path.parent.mkdir()
    shutil.copy(project_root() / "inventories" / SITE / "site.yaml", path)
    return path


def edit(path: Path, old: str, new: str) -> Site:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return load_site(path)


def test_a_site_never_rolled_out_creates_every_node_and_object(site_file: Path) -> None:
    site = load_site(site_file)
    changes = site_changes(site)
    assert changes["pending"] is True
    assert {n["action"] for n in changes["nodes"]} == {CREATE}
    assert len(changes["nodes"]) == len(site.nodes)
    assert changes["objects"] and {o["action"] for o in changes["objects"]} == {CREATE}
    assert changes["last_run"] is None and changes["stack"] is None


def test_right_after_a_rollout_nothing_is_pending(site_file: Path) -> None:
    site = load_site(site_file)
    record_rollout(site)
    changes = site_changes(load_site(site_file))
    assert changes["pending"] is False
    assert changes["nodes"] == [] and changes["objects"] == [] and changes["counts"] == {}
    assert changes["last_run"] == {"run": "run-1", "started": "2026-11-21T10:00:00Z", "outcome": "completed"}
    assert changes["stack"]["action"] == "rendered"


def test_a_budget_edit_names_each_node_s_cap_and_diffs_the_budget_objects(site_file: Path) -> None:
    record_rollout(load_site(site_file))
    # c02 rejects 180 kW at the design day; 170 kW lowers the cap of each of its GPUs.
    site = edit(site_file, "cooling_kw: 180", "cooling_kw: 170")
    changes = site_changes(site)
    assert changes["pending"] is True
    c02 = [n for n in site.nodes if n.container == "c02"]
    assert [n["name"] for n in changes["nodes"]] == [n.name for n in c02]
    for node in changes["nodes"]:
        assert node["action"] == UPDATE and node["parts"] == ["vars"]
        assert node["reason"] == "inventory variables changed"
        (cap,) = [v for v in node["vars"] if v["name"] == "ecohash_gpu_cap_w"]
        assert cap["from"] == 337 and cap["to"] < 337
    updated = {o["file"]: o for o in changes["objects"]}
    assert set(updated) >= {"ecohash-system/configmap-power-budget-c02.yaml",
                            "ecohash-system/configmap-power-budget.yaml"}
    assert all(o["action"] == UPDATE for o in updated.values())
    diff = updated["ecohash-system/configmap-power-budget-c02.yaml"]["diff"]
    assert '"gpu_cap_w": 337' in diff and diff.startswith("--- recorded/")
    assert any(line.startswith("+") and '"gpu_cap_w": 3' in line for line in diff.splitlines())


def test_failed_nodes_are_retried_and_removed_nodes_named(site_file: Path) -> None:
    site = load_site(site_file)
    state = record_rollout(site, status=FAILED)
    state.record("c09-r01-n01", state.nodes["c01-cp-n01"])
    state.save()
    changes = node_changes(planned_inventory(site), RolloutState.load(site.name))
    retried = [n for n in changes if n["action"] == RETRY]
    assert len(retried) == len(site.nodes)
    assert retried[0]["reason"] == "last run run-1: failed (failed acceptance: gpu_count)"
    assert retried[0]["parts"] == []  # same inputs; it is the result that needs redoing
    assert changes[-1]["name"] == "c09-r01-n01" and changes[-1]["action"] == REMOVE


def test_a_site_file_without_kubernetes_objects_deletes_them(site_file: Path) -> None:
    site = load_site(site_file)
    record_rollout(site)
    state = RolloutState.load(site.name)
    rendered = checked_render(site, planned_inventory(site).standard)
    recorded_only = rendered.objects[0]
    remaining = type(rendered)(rendered.site, rendered.objects[1:])
    (deleted,) = object_changes(remaining, state)
    assert deleted["action"] == DELETE
    assert (deleted["kind"], deleted["name"]) == (recorded_only["kind"], recorded_only["metadata"]["name"])


def test_state_from_before_variables_were_recorded_still_names_the_part(site_file: Path) -> None:
    site = load_site(site_file)
    state = record_rollout(site)
    for record in state.nodes.values():
        record.vars, record.site_vars = None, None
    state.save()
    site = edit(site_file, "cooling_kw: 180", "cooling_kw: 170")
    changes = node_changes(planned_inventory(site), RolloutState.load(site.name))
    assert changes and all(n["parts"] == ["vars"] and n["vars"] == [] for n in changes)


def test_recorded_render_is_kept_in_the_state_directory(site_file: Path, state_dir: Path) -> None:
    site = load_site(site_file)
    state = record_rollout(site)
    stack_dir = state_dir / "rollouts" / SITE / "stack"
    assert sorted(str(p.relative_to(stack_dir)) for p in stack_dir.rglob("*.yaml")) == sorted(state.stack["objects"])
    saved = RolloutState.load(site.name)
    assert saved.stack == state.stack
    # Only site variable sets some node refers to are kept.
    assert list(saved.site_vars) == [next(iter(saved.nodes.values())).site_vars]


class Quiet:
    def say(self, text: str) -> None:
        pass

    def wave(self, title: str):  # noqa: ANN201 - a dry run has no waves
        raise AssertionError("a dry run runs no wave")


def test_plan_provision_and_status_agree_on_a_node_recorded_at_another_fingerprint_version(
        site_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = load_site(site_file)
    state = record_rollout(site)
    # As a record from before FINGERPRINT_VERSION was bumped: every part the same, the value not.
    for record in state.nodes.values():
        record.fingerprint = "0" * 64
    state.save()
    monkeypatch.setattr(preflight, "probe_all", lambda targets: {
        target.name: preflight.ProbeResult(target.name, True, None, "/usr/bin/python3", 0.0) for target in targets})
    report = provision(ProvisionRequest(site, dry_run=True), Quiet(), threading.Event())
    provisioned = [node["name"] for node in report["nodes"] if node["status"] != SKIPPED]
    assert provisioned == [node.name for node in site.nodes]
    changes = site_changes(site)
    assert [n["name"] for n in changes["nodes"]] == provisioned
    assert {(n["action"], n["reason"]) for n in changes["nodes"]} == {(UPDATE, "fingerprint rules changed")}
    assert changes["pending"] is True
    status = site_status(site)
    assert status["counts"] == {"outdated": len(provisioned)}
    assert {tuple(node["changed"]) for node in status["nodes"]} == {("version",)}
