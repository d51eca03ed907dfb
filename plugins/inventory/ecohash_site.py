"""Ansible inventory plugin: an ecohash site file is the inventory, as it is.

    ansible-inventory -i inventories/tx-odessa/site.yaml --graph

The mapping lives in the ecohash package (ecohash.ansible.inventory); this file only
hands it to Ansible, so Ansible, the CLI and the stacks read the site one way.
"""

from __future__ import annotations

import os
import re

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin

DOCUMENTATION = r"""
name: ecohash_site
short_description: Reads an ecohash site file (inventories/<site>/site.yaml) as an inventory
description:
  - Groups nodes by site, container, rack, SKU, GPU model and Kubernetes role
    (k8s_servers, k8s_agents), and gives each node its management IP and the GPU
    power cap the ecohash budget compiler computes from the site's power and cooling.
  - Needs the ecohash package (scripts/install puts it in .venv with Ansible).
  - Accepts files named site.yaml or site.yml whose kind is Site.
"""

SITE_FILE_NAMES = ("site.yaml", "site.yml")
# A top-level `kind: Site`, however quoted or commented.
SITE_KIND = re.compile(rb"""^kind:[ \t]*(["']?)Site\1[ \t]*(#.*)?\r?$""", re.MULTILINE)


class InventoryModule(BaseInventoryPlugin):
    NAME = "ecohash_site"

    def verify_file(self, path: str) -> bool:
        if not super().verify_file(path) or os.path.basename(path) not in SITE_FILE_NAMES:
            return False
        with open(path, "rb") as handle:
            text = handle.read()
        # Claim only ecohash site files, so other YAML inventories reach their own plugins.
        return SITE_KIND.search(text) is not None

    def parse(self, inventory, loader, path, cache=True):  # noqa: ANN001 - Ansible's signature
        super().parse(inventory, loader, path, cache)
        try:
            from ecohash.ansible.inventory import load_inventory
            from ecohash.errors import EcohashError
        except ImportError as error:
            raise AnsibleParserError(
                f"the ecohash_site inventory plugin needs the ecohash package ({error}); "
                "run scripts/install and use .venv/bin/ansible-playbook"
            ) from None
        try:
            site = load_inventory(path)
        except EcohashError as error:
            raise AnsibleParserError(str(error)) from None

        # Site values are data: ansible-core 2.19 and later never template what an inventory
        # plugin sets unless the plugin declares itself trusted_by_default, which this one
        # must not (pyproject requires 2.19 for that reason); the site model's patterns keep
        # braces out of every value as well.
        for name, variables in site.all_vars.items():
            self.inventory.set_variable("all", name, variables)
        for group, child_groups in site.children.items():
            self.inventory.add_group(group)
            for child in child_groups:
                self.inventory.add_group(child)
                self.inventory.add_child(group, child)
        for group, hosts in site.groups.items():
            self.inventory.add_group(group)
            for host in hosts:
                self.inventory.add_host(host, group=group)
        for group, variables in site.group_vars.items():
            for name, value in variables.items():
                self.inventory.set_variable(group, name, value)
        for host, variables in site.hosts.items():
            for name, value in variables.items():
                self.inventory.set_variable(host, name, value)
