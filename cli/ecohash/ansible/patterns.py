"""Which of a site's nodes an Ansible host pattern (`--limit`) selects, by Ansible's own rules.

A rollout needs the list of nodes before Ansible runs (to fingerprint them, skip the
ones already done and cut waves), and a user's --limit must select exactly what it
would select in `ansible-playbook --limit`: groups, globs, `~regex`, `&` and `!`,
subscripts. So the inventory is handed to Ansible's InventoryManager in memory and
the pattern is evaluated there, rather than reimplemented.
"""

from __future__ import annotations

from ecohash.ansible.inventory import Inventory
from ecohash.errors import InvalidInputError


def select_hosts(inventory: Inventory, pattern: str | None) -> list[str]:
    """Nodes matching `pattern` in the inventory's order; every node when it is None."""
    ordered = list(inventory.hosts)
    if pattern is None:
        return ordered
    from ansible.errors import AnsibleError
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader

    from ansible import constants

    manager = InventoryManager(DataLoader(), parse=False)
    data = manager._inventory  # InventoryManager has no public way to add child groups
    child_groups = {child for children in inventory.children.values() for child in children}
    for group in {*inventory.groups, *inventory.children, *child_groups}:
        if group != "all":
            data.add_group(group)
    for parent, children in inventory.children.items():
        if parent != "all":
            for child in children:
                data.add_child(parent, child)
    for host in ordered:
        data.add_host(host)
    for group, hosts in inventory.groups.items():
        for host in hosts:
            data.add_child(group, host)
    data.reconcile_inventory()  # makes `all` (and `ungrouped`) as a parsed inventory has them
    # Ansible warns and ignores a term that matches nothing; in a rollout a mistyped term
    # would silently leave nodes out (or, after `!`, in), so it is an error here.
    mismatch = constants.HOST_PATTERN_MISMATCH
    constants.HOST_PATTERN_MISMATCH = "error"
    try:
        selected = {host.name for host in manager.get_hosts(pattern)}
    except AnsibleError as error:
        term = str(error.message).rpartition("ignoring: ")[2] if "ignoring: " in str(error.message) else None
        detail = f"{term!r} is no node or group" if term else error.message
        raise InvalidInputError(f"--limit {pattern!r}: {detail}") from None
    finally:
        constants.HOST_PATTERN_MISMATCH = mismatch
    if not selected:
        site = inventory.all_vars["ecohash_site"]
        raise InvalidInputError(f"--limit {pattern!r} selects no node of site {site}")
    return [host for host in ordered if host in selected]
