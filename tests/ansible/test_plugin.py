"""The inventory plugin under the real ansible-inventory, with the repository's ansible.cfg."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ecohash.ansible.inventory import Inventory, load_inventory
from ecohash.inventory import load_site
from ecohash.inventory.labels import node_labels
from tests.conftest import EXAMPLE_SITE, REPO

SITE_FILE = REPO / "inventories" / "nd-williston" / "site.yaml"
# The ansible-inventory of the environment running the tests, which has ecohash installed.
ANSIBLE_INVENTORY = Path(sys.executable).parent / "ansible-inventory"
PLUGIN_FILE = REPO / "plugins" / "inventory" / "ecohash_site.py"


def ansible_inventory(*args: str | Path, state_dir: Path) -> subprocess.CompletedProcess[str]:
    assert ANSIBLE_INVENTORY.is_file(), f"{ANSIBLE_INVENTORY} missing: run scripts/install"
    # Only the repository's ansible.cfg may configure Ansible here (cwd=REPO finds it).
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["ECOHASH_STATE_DIR"] = str(state_dir)
    return subprocess.run([ANSIBLE_INVENTORY, *map(str, args)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def plain(value: Any) -> Any:
    """JSON from ansible-core 2.19+ marks strings {"__ansible_unsafe": ...}; drop the marks."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def top_level_groups(inventory: Inventory) -> set[str]:
    """Groups that are nobody's child: Ansible makes each a child of `all`."""
    named = set(inventory.groups) | set(inventory.children)
    nested = {child for parent, children in inventory.children.items() if parent != "all" for child in children}
    return named - {"all"} - nested


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("state")


@pytest.fixture(scope="module")
def expected(state_dir) -> Inventory:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ECOHASH_STATE_DIR", str(state_dir))
        return load_inventory(SITE_FILE)


@pytest.fixture(scope="module")
def listed(state_dir) -> dict[str, Any]:
    # --export keeps site-wide vars on `all` instead of copying them into every host.
    result = ansible_inventory("-i", SITE_FILE, "--list", "--export", state_dir=state_dir)
    assert result.returncode == 0, result.stderr
    return plain(json.loads(result.stdout))


def test_list_has_every_host_with_its_vars(listed, expected):
    assert listed["_meta"]["hostvars"] == json.loads(json.dumps(expected.hosts))
    # The caps reach Ansible as the budget compiler set them (c02's cooling caps it to 337 W).
    hostvars = listed["_meta"]["hostvars"]
    assert hostvars["c02-r01-n01"]["ecohash_gpu_cap_w"] == 337
    assert hostvars["c01-r01-n01"]["ecohash_gpu_cap_w"] == 350
    assert hostvars["c01-cp-n01"]["ecohash_gpu_cap_w"] is None


@pytest.mark.parametrize("host", ["c01-cp-n01", "c02-r03-n05"])
def test_ansible_resolves_each_host_s_variables_as_the_inventory_says(state_dir, expected, host):
    # Group and host variables merged by Ansible itself, as a play sees them: the site's on
    # `all`, the connection on the site group, container, rack, SKU and role on theirs.
    result = ansible_inventory("-i", SITE_FILE, "--host", host, state_dir=state_dir)
    assert result.returncode == 0, result.stderr
    resolved = plain(json.loads(result.stdout))
    assert resolved == json.loads(json.dumps({**expected.all_vars, **expected.host_vars(host)}))
    assert {key: resolved[key] for key in ("ansible_host", "ansible_user", "ecohash_container", "ecohash_rack",
                                           "ecohash_gpu_count", "ecohash_k8s_role", "ecohash_gpu_cap_w")} == (
        {"ansible_host": "10.40.0.10", "ansible_user": "root", "ecohash_container": "c01", "ecohash_rack": "cp",
         "ecohash_gpu_count": 0, "ecohash_k8s_role": "server", "ecohash_gpu_cap_w": None}
        if host == "c01-cp-n01" else
        {"ansible_host": "10.40.0.125", "ansible_user": "root", "ecohash_container": "c02", "ecohash_rack": "r03",
         "ecohash_gpu_count": 8, "ecohash_k8s_role": "agent", "ecohash_gpu_cap_w": 337})


def test_the_controller_s_own_tasks_do_not_take_the_site_s_connection(state_dir):
    # Ansible's implicit localhost (delegate_to: localhost in k8s_node) takes `all`'s
    # variables: the site's ssh user and become, were they on `all`, would run the
    # controller's tasks through sudo as that user.
    site_file = REPO / "inventories" / "tx-odessa" / "site.yaml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["ECOHASH_STATE_DIR"] = str(state_dir)
    result = subprocess.run(
        [ANSIBLE_INVENTORY.parent / "ansible", "localhost", "-i", site_file, "-m", "ansible.builtin.debug", "-a",
         "msg={{ [ecohash_site, ansible_user | default('-'), ansible_become | default('-')] | to_json }}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert '["tx-odessa", "-", "-"]' in result.stdout


def test_the_k8s_node_role_combines_each_host_s_labels_as_node_labels_makes_them(state_dir):
    # The inventory keeps each part of a node's labels on its site's, container's, rack's and
    # SKU's group; the role's default puts them back together. Ansible renders that default
    # here (the role's defaults as extra variables) for a server without GPUs and a GPU agent.
    site = load_site(SITE_FILE)
    containers = {container.name: container for container in site.containers}
    nodes = {node.name: node for node in site.nodes if node.name in ("c01-cp-n01", "c02-r03-n05")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["ECOHASH_STATE_DIR"] = str(state_dir)
    result = subprocess.run(
        [ANSIBLE_INVENTORY.parent / "ansible", ":".join(nodes), "-i", SITE_FILE,
         "-e", "@" + str(REPO / "roles" / "k8s_node" / "defaults" / "main.yml"),
         "-m", "ansible.builtin.debug", "-a", "var=k8s_node_labels"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    # The repository's yaml callback: "HOST | SUCCESS => " then the result, indented.
    _, *answers = re.split(r"^(\S+) \| SUCCESS => $", result.stdout, flags=re.MULTILINE)
    rendered = {host: yaml.safe_load(text)["k8s_node_labels"] for host, text in zip(answers[::2], answers[1::2], strict=True)}
    assert rendered == {name: node_labels(site.name, containers[node.container], node) for name, node in nodes.items()}
    assert rendered["c02-r03-n05"]["ecohash.io/gpu-count"] == "8"


def test_every_string_the_site_gives_ansible_is_marked_unsafe(state_dir):
    """A site file is data: Ansible must never template a string that came from it."""
    result = ansible_inventory("-i", SITE_FILE, "--list", "--export", state_dir=state_dir)
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)

    def strings(value: Any, marked: bool = False):
        if isinstance(value, dict):
            if set(value) == {"__ansible_unsafe"}:
                yield from strings(value["__ansible_unsafe"], marked=True)
                return
            for item in value.values():
                yield from strings(item, marked)
        elif isinstance(value, list):
            for item in value:
                yield from strings(item, marked)
        elif isinstance(value, str):
            yield value, marked

    found = list(strings({"hosts": listed["_meta"]["hostvars"], "all": listed["all"]["vars"],
                          "groups": {name: entry.get("vars") for name, entry in listed.items() if name != "_meta"}}))
    assert len(found) > 100
    assert [text for text, marked in found if not marked] == []


def test_list_has_the_site_vars_on_all(listed, expected):
    assert listed["all"]["vars"] == json.loads(json.dumps(expected.all_vars))
    assert listed["all"]["vars"]["ecohash_standard"]["metadata"]["name"] == "ecohash-node-2026.11"


def test_list_has_every_group_with_its_hosts_and_children(listed, expected):
    data = json.loads(json.dumps(expected.as_ansible_json()))
    groups = {name: entry for name, entry in data.items() if name not in ("_meta", "all")}
    assert {name: entry for name, entry in listed.items() if name not in ("_meta", "all")} == groups
    # Ansible hangs every top-level group under `all`, and adds its own `ungrouped`.
    assert set(listed["all"]["children"]) == top_level_groups(expected) | {"ungrouped"}
    assert top_level_groups(expected) == {"site_nd_williston", "sku_cpu_1u", "sku_l40s_8", "gpu_l40s",
                                          "gpu_nodes", "k8s_servers", "k8s_agents"}


def parse_graph(text: str) -> dict[str, tuple[set[str], set[str]]]:
    """`--graph` output as group -> (child groups, hosts)."""
    graph: dict[str, tuple[set[str], set[str]]] = {}
    parents: list[str] = []
    for line in text.splitlines():
        if line == "@all:":
            parents = ["all"]
            graph["all"] = (set(), set())
            continue
        depth = line.index("|--") // 3 + 1
        name = line[line.index("|--") + 3:]
        del parents[depth:]
        if name.startswith("@"):
            group = name[1:].rstrip(":")
            graph[parents[-1]][0].add(group)
            graph.setdefault(group, (set(), set()))
            parents.append(group)
        else:
            graph[parents[-1]][1].add(name)
    return graph


def test_graph_nests_site_containers_racks_and_nodes(state_dir, expected):
    result = ansible_inventory("-i", SITE_FILE, "--graph", state_dir=state_dir)
    assert result.returncode == 0, result.stderr
    graph = parse_graph(result.stdout)
    assert graph["all"] == (top_level_groups(expected) | {"ungrouped"}, set())
    assert graph["ungrouped"] == (set(), set())
    for group in (set(expected.groups) | set(expected.children)) - {"all"}:
        assert graph[group] == (set(expected.children.get(group, [])), set(expected.groups.get(group, []))), group
    assert graph["site_nd_williston"] == ({"container_c01", "container_c02"}, set())
    assert graph["rack_c01_cp"] == (set(), {"c01-cp-n01"})


@pytest.mark.parametrize(
    ("replacement", "expected"),
    [
        (("pue: 1.25", "pue: 0.9"), "10: spec.power.pue: must be greater than or equal to 1 (got 0.9)"),
        # The budget compiler's errors stop Ansible too: at their 200 W minimum caps the
        # 4 nodes draw 4 x (2600 + 8 x 200) = 16.8 kW, over a 15 kW rack.
        (("power_kw: 45", "power_kw: 15"),
         "26: rack c01/r01 is infeasible: budget 15.000 kW, but its 4 nodes need 16.800 kW even at the lowest "
         "settable GPU caps (hosts alone 10.400 kW)"),
    ],
    ids=["invalid", "infeasible"],
)
def test_a_broken_site_fails_with_its_file_and_line(write_site, state_dir, replacement, expected):
    path = write_site(EXAMPLE_SITE, replacement)
    result = ansible_inventory("-i", path, "--list", state_dir=state_dir)
    assert result.returncode != 0
    assert f"{path}:{expected}" in result.stdout + result.stderr


@pytest.fixture(scope="module")
def plugin() -> Any:
    spec = importlib.util.spec_from_file_location("ecohash_site_plugin", PLUGIN_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.InventoryModule()


@pytest.mark.parametrize("site_file", sorted((REPO / "inventories").glob("*/site.yaml")),
                         ids=lambda p: p.parent.name)
def test_plugin_claims_the_example_sites(plugin, site_file):
    assert plugin.verify_file(str(site_file)) is True


@pytest.mark.parametrize(
    ("name", "text", "claimed"),
    [
        ("site.yaml", EXAMPLE_SITE, True),
        ("site.yml", EXAMPLE_SITE, True),
        # A broken site is still claimed, so its FILE:LINE errors are what the user sees.
        ("site.yaml", EXAMPLE_SITE.replace("pue: 1.25", "pue: 0.9"), True),
        # Only site files by name: another YAML file is left to other plugins.
        ("hosts.yaml", EXAMPLE_SITE, False),
        ("site.json", EXAMPLE_SITE, False),
        # A plain Ansible YAML inventory named site.yaml is not an ecohash site.
        ("site.yaml", "all:\n  hosts:\n    node1:\n      ansible_host: 10.0.0.1\n", False),
        ("site.yaml", EXAMPLE_SITE.replace("kind: Site", "kind: NodeStandard"), False),
    ],
)
def test_plugin_claims_only_ecohash_site_files(plugin, tmp_path, name, text, claimed):
    path = tmp_path / name
    path.write_text(text)
    assert plugin.verify_file(str(path)) is claimed


def test_plugin_does_not_claim_a_missing_file(plugin, tmp_path):
    assert plugin.verify_file(str(tmp_path / "site.yaml")) is False
