"""The standard fingerprint: changes exactly when what a node becomes changes."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest

from ecohash.ansible.inventory import Inventory, load_inventory
from ecohash.rollout.fingerprint import Fingerprints

REPO = Path(__file__).resolve().parents[2]
SITE = REPO / "inventories" / "nd-williston" / "site.yaml"
GPU_NODE, OTHER_GPU_NODE, CPU_NODE = "c01-r01-n01", "c01-r01-n02", "c01-cp-n01"


@pytest.fixture(scope="module")
def inventory() -> Inventory:
    return load_inventory(SITE)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A copy of the Ansible content, to edit."""
    for name in ("roles", "playbooks", "plugins"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("ansible.cfg", "galaxy.yml"):
        shutil.copy(REPO / name, tmp_path)
    return tmp_path


def append(path: Path, text: str) -> None:
    with path.open("a") as file:
        file.write(text)


def test_each_node_gets_the_roles_node_yml_gives_its_kind_and_every_role_they_import(
        inventory: Inventory) -> None:
    fingerprints = Fingerprints(inventory)
    assert fingerprints.roles_of(GPU_NODE) == {
        "base", "apt_packages", "nvidia_driver", "container_runtime", "gpu_power", "node_health",
        "k8s_node", "inference_runtime"}
    assert fingerprints.roles_of(CPU_NODE) == {"base", "apt_packages", "container_runtime", "k8s_node"}


@pytest.mark.parametrize("edited", ["roles/apt_packages/tasks/main.yml", "ansible.cfg",
                                    "plugins/inventory/ecohash_site.py"])
def test_a_role_every_node_imports_ansible_cfg_and_the_inventory_plugin_are_in_every_node(
        inventory: Inventory, root: Path, edited: str) -> None:
    before = Fingerprints(inventory, root)
    gpu_before, cpu_before = before.of(GPU_NODE), before.of(CPU_NODE)
    append(root / edited, "\n# an edit\n")
    after = Fingerprints(inventory, root)
    assert after.of(GPU_NODE).changed_since(gpu_before.value, gpu_before.components) == ["roles"]
    assert after.of(CPU_NODE).changed_since(cpu_before.value, cpu_before.components) == ["roles"]


def test_same_inputs_same_fingerprint_wherever_the_checkout_is(inventory: Inventory, root: Path) -> None:
    here = Fingerprints(inventory).of(GPU_NODE)
    there = Fingerprints(inventory, root).of(GPU_NODE)
    assert here == there
    assert len(here.value) == 64
    assert Fingerprints(inventory).of(OTHER_GPU_NODE).value != here.value  # its own address


def test_a_cap_change_changes_only_the_vars_part(inventory: Inventory) -> None:
    changed = copy.deepcopy(inventory)
    changed.hosts[GPU_NODE]["ecohash_gpu_cap_w"] -= 10
    before, after = Fingerprints(inventory).of(GPU_NODE), Fingerprints(changed).of(GPU_NODE)
    assert after.value != before.value
    assert after.changed_since(before.value, before.components) == ["vars"]
    assert Fingerprints(changed).of(OTHER_GPU_NODE) == Fingerprints(inventory).of(OTHER_GPU_NODE)


def test_a_driver_bump_redoes_gpu_nodes_but_not_the_cpu_only_control_plane(inventory: Inventory) -> None:
    changed = copy.deepcopy(inventory)
    changed.all_vars["ecohash_standard"]["nvidia_driver"]["version"] = "999.1.1"
    old, new = Fingerprints(inventory), Fingerprints(changed)
    assert new.of(GPU_NODE).changed_since(old.of(GPU_NODE).value, old.of(GPU_NODE).components) == ["standard"]
    assert new.of(CPU_NODE) == old.of(CPU_NODE)


def test_a_k3s_bump_changes_every_kubernetes_node(inventory: Inventory) -> None:
    changed = copy.deepcopy(inventory)
    changed.all_vars["ecohash_standard"]["k3s"]["version"] = "v9.9.9+k3s1"
    for node in (GPU_NODE, CPU_NODE):
        assert Fingerprints(changed).of(node) != Fingerprints(inventory).of(node)


def test_a_role_edit_changes_the_nodes_that_get_the_role(inventory: Inventory, root: Path) -> None:
    before = Fingerprints(inventory, root)
    gpu_before, cpu_before = before.of(GPU_NODE), before.of(CPU_NODE)
    append(root / "roles" / "gpu_power" / "tasks" / "main.yml", "# an edit\n")
    after = Fingerprints(inventory, root)
    assert after.of(GPU_NODE).changed_since(gpu_before.value, gpu_before.components) == ["roles"]
    assert after.of(CPU_NODE) == cpu_before  # no gpu_power on a CPU-only node
    (root / "playbooks" / "node.yml").write_text((root / "playbooks" / "node.yml").read_text() + "\n")
    assert Fingerprints(inventory, root).of(CPU_NODE) != cpu_before  # every node runs node.yml


def test_connection_paths_and_pacing_do_not_change_a_node(inventory: Inventory) -> None:
    changed = copy.deepcopy(inventory)
    changed.hosts[GPU_NODE].update(ansible_user="ops", ansible_become=True, ansible_port=2222,
                                   ansible_ssh_common_args="-F /elsewhere/ssh_config")
    changed.all_vars.update(ecohash_secrets_dir="/other/laptop/secrets", ecohash_site_file="/x/site.yaml",
                            ecohash_rollout_serial=[1, "50%"], ecohash_rollout_max_fail_percentage=0)
    assert Fingerprints(changed).of(GPU_NODE) == Fingerprints(inventory).of(GPU_NODE)


def test_a_playbook_not_run_by_a_rollout_changes_no_node(inventory: Inventory, root: Path) -> None:
    before = Fingerprints(inventory, root).of(GPU_NODE)
    append(root / "playbooks" / "verify.yml", "# an edit\n")
    assert Fingerprints(inventory, root).of(GPU_NODE) == before
