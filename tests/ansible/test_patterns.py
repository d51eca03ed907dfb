"""--limit selects exactly what Ansible selects for the same pattern on the same site."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ecohash.ansible.inventory import Inventory, load_inventory
from ecohash.ansible.patterns import select_hosts
from ecohash.errors import InvalidInputError

REPO = Path(__file__).resolve().parents[2]
SITE = REPO / "inventories" / "nd-williston" / "site.yaml"
ANSIBLE = str(Path(sys.executable).parent / "ansible")


@pytest.fixture(scope="module")
def inventory() -> Inventory:
    return load_inventory(SITE)


def ansible_selects(pattern: str) -> list[str]:
    listed = subprocess.run(
        [ANSIBLE, pattern, "-i", str(SITE), "--list-hosts"], capture_output=True, text=True, check=True,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}, cwd=REPO,
    ).stdout  # fmt: skip
    return sorted(line.strip() for line in listed.splitlines()[1:] if line.strip())


@pytest.mark.parametrize("pattern", [
    "container_c01", "c01-r01-n0*", "gpu_nodes:!k8s_servers", "~c0[12]-r01-n01$",
    "k8s_servers,c02-r02-n03", "rack_c01_r01[0:2]", "all:&k8s_servers", "container_c0*:&sku_*:!rack_c02_r01",
])
def test_the_same_nodes_as_ansible(inventory: Inventory, pattern: str) -> None:
    selected = select_hosts(inventory, pattern)
    assert sorted(selected) == ansible_selects(pattern)
    assert selected == [name for name in inventory.hosts if name in set(selected)]  # the site's order


def test_no_pattern_is_every_node(inventory: Inventory) -> None:
    assert select_hosts(inventory, None) == list(inventory.hosts)


def test_a_term_matching_nothing_is_an_error_not_a_silent_gap(inventory: Inventory) -> None:
    # Ansible would warn and go on with container_c01 alone.
    with pytest.raises(InvalidInputError, match=r"--limit 'container_c01,c01-r01-n1O': 'c01-r01-n1O' is no node or group"):
        select_hosts(inventory, "container_c01,c01-r01-n1O")
    with pytest.raises(InvalidInputError, match="selects no node of site nd-williston"):
        select_hosts(inventory, "gpu_nodes:&k8s_servers")
