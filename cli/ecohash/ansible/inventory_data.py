"""Ansible's terms for a site: groups, their hosts and children, and variables.

Apart from the mapping (ecohash.ansible.inventory) so that a cached inventory
(ecohash.ansible.inventory_cache) is handed to Ansible without importing the site's
models, whose import alone costs a tenth of what the plugin may take.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any


@dataclass
class Inventory:
    """Groups (with their hosts and child groups) and variables, ready for Ansible.

    Each value is held once, on the widest group it is true for: site-wide facts on
    `all`, how every node is reached on the site group, a container's, rack's, SKU's or
    Kubernetes role's values on that group, and on a host only what is its own. Ansible
    keeps a variable dictionary per host, and a 10,000-node site is parsed at the start of
    every playbook run. `host_vars` gives a host's variables merged as Ansible merges them.
    """

    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)  # host -> its own variables
    groups: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))  # -> hosts
    children: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    group_vars: dict[str, dict[str, Any]] = field(default_factory=dict)  # group -> its variables
    all_vars: dict[str, Any] = field(default_factory=dict)

    def host_vars(self, host: str) -> dict[str, Any]:
        """The host's variables as Ansible resolves them, less those of `all` (all_vars).

        Its groups' variables from the shallowest group to the deepest, groups of one depth
        by name (Ansible's own order), then the host's own; a later value wins.
        """
        merged: dict[str, Any] = {}
        for group in self._groups_of[host]:
            merged.update(self.group_vars.get(group, {}))
        merged.update(self.hosts[host])
        return merged

    @cached_property
    def _groups_of(self) -> dict[str, list[str]]:
        """Every group each host is in, its parent groups' included, in Ansible's merge order."""
        parents: dict[str, list[str]] = defaultdict(list)
        for parent, child_groups in self.children.items():
            if parent != "all":
                for child in child_groups:
                    parents[child].append(parent)
        depths: dict[str, int] = {}

        def depth(group: str) -> int:
            # A group nobody names as its child is a child of `all` (depth 0), as in Ansible.
            if group not in depths:
                depths[group] = 1 + max((depth(parent) for parent in parents[group]), default=0)
            return depths[group]

        def with_parents(group: str) -> set[str]:
            return {group}.union(*(with_parents(parent) for parent in parents[group]))

        memberships: dict[str, set[str]] = {host: set() for host in self.hosts}
        for group, hosts in self.groups.items():
            ancestry = with_parents(group)
            for host in hosts:
                memberships[host] |= ancestry
        return {host: sorted(groups, key=lambda group: (depth(group), group))
                for host, groups in memberships.items()}

    def as_ansible_json(self) -> dict[str, Any]:
        """The `ansible-inventory --list --export` shape, for tests and for tools without Ansible."""
        data: dict[str, Any] = {
            "_meta": {"hostvars": self.hosts},
            "all": {"children": sorted(self.children.get("all", [])), "vars": self.all_vars},
        }
        for group in sorted(set(self.groups) | set(self.children)):
            if group == "all":
                continue
            entry: dict[str, Any] = {}
            if self.groups.get(group):
                entry["hosts"] = self.groups[group]
            if self.children.get(group):
                entry["children"] = self.children[group]
            if self.group_vars.get(group):
                entry["vars"] = self.group_vars[group]
            data[group] = entry
        return data
