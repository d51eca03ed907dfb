"""Ansible inventory plugin: an ecohash site file is the inventory, as it is.

    ansible-inventory -i inventories/tx-odessa/site.yaml --graph

or, as AWX and Ansible Automation Platform take inventories, a small source file that
names this plugin and the site file (examples/awx/inventories/tx-odessa.ecohash.yml).

The mapping lives in the ecohash package (ecohash.ansible.inventory); this file only
hands it to Ansible, so Ansible, the CLI and the stacks read the site one way. A site
whose files are unchanged since the last run is served from a cache under the state
directory (ecohash.ansible.inventory_cache).
"""

from __future__ import annotations

import os
import re

from ansible.errors import AnsibleError, AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin

DOCUMENTATION = r"""
name: ecohash_site
short_description: Reads an ecohash site file (inventories/<site>/site.yaml) as an inventory
version_added: "0.1.0"
author: ecohash
description:
  - Groups nodes by site, container, rack, SKU, GPU model and Kubernetes role
    (k8s_servers, k8s_agents), and gives each node its management IP and the GPU
    power cap the ecohash budget compiler computes from the site's power and cooling.
  - Takes a site file itself (named C(site.yaml) or C(site.yml), whose kind is Site), or
    an inventory source file whose name ends in C(ecohash.yml) or C(ecohash.yaml) (for
    instance C(tx-odessa.ecohash.yml)) that names this plugin and the site file, the form
    AWX and Ansible Automation Platform inventory sources take.
  - Site values are data, never templated.
requirements:
  - The ecohash Python package on the controller (scripts/install puts it in .venv with
    Ansible; the execution environment in execution-environment.yml has it).
options:
  plugin:
    description:
      - The name of this plugin; it makes a source file this plugin's.
      - Only in an inventory source file; a site file has no such key.
    type: str
    required: true
    choices: [ecohash.site.ecohash_site]
  site_file:
    description:
      - The site file this source reads, relative to the source file's directory or
        absolute.
      - Only in an inventory source file.
    type: str
    required: true
"""

EXAMPLES = r"""
# inventories/tx-odessa.ecohash.yml in an AWX project: the site file beside it, one level up.
plugin: ecohash.site.ecohash_site
site_file: ../inventories/tx-odessa/site.yaml

# Read a site file directly:
#   ansible-inventory -i inventories/tx-odessa/site.yaml --graph
# or through a source file, with the collection installed:
#   ansible-inventory -i tx-odessa.ecohash.yml --list --export
"""

SITE_FILE_NAMES = ("site.yaml", "site.yml")
# Inventory source files, as inventory plugins of collections name them (aws_ec2.yml...).
SOURCE_FILE_SUFFIXES = ("ecohash.yml", "ecohash.yaml")
# A top-level `kind: Site`, however quoted or commented.
SITE_KIND = re.compile(rb"""^kind:[ \t]*(["']?)Site\1[ \t]*(#.*)?\r?$""", re.MULTILINE)


class InventoryModule(BaseInventoryPlugin):
    NAME = "ecohash_site"

    def verify_file(self, path: str) -> bool:
        if not super().verify_file(path):
            return False
        name = os.path.basename(path)
        if name.endswith(SOURCE_FILE_SUFFIXES):
            return True
        if name not in SITE_FILE_NAMES:
            return False
        with open(path, "rb") as handle:
            text = handle.read()
        # Claim only ecohash site files, so other YAML inventories reach their own plugins.
        return SITE_KIND.search(text) is not None

    def parse(self, inventory, loader, path, cache=True):  # noqa: ANN001 - Ansible's signature
        super().parse(inventory, loader, path, cache)
        try:
            from ecohash.ansible.inventory_cache import cached_inventory
            from ecohash.errors import EcohashError
        except ImportError as error:
            raise AnsibleParserError(
                f"the ecohash_site inventory plugin needs the ecohash package ({error}); "
                "run scripts/install and use .venv/bin/ansible-playbook"
            ) from None
        site_file = path
        if os.path.basename(path).endswith(SOURCE_FILE_SUFFIXES):
            site_file = self._site_file_of_source(path)
        try:
            site = cached_inventory(site_file)
        except EcohashError as error:
            raise AnsibleParserError(str(error)) from None

        # Site values are data: ansible-core 2.19 and later never template what an inventory
        # plugin sets unless the plugin declares itself trusted_by_default, which this one
        # must not (pyproject requires 2.19 for that reason); the site model's patterns keep
        # braces out of every value as well.
        for name, variables in site.all_vars.items():
            self.inventory.set_variable("all", name, variables)
        for group in (*site.children, *(child for children in site.children.values() for child in children),
                      *site.groups):
            self.inventory.add_group(group)
        # Hosts join their groups before the groups are nested: each join walks the group's
        # parents (twice), and 50,000 joins of a 10,000-node site then walk none (10-15% of
        # the plugin's CPU, measured); nesting afterwards gives every host the same groups.
        for group, hosts in site.groups.items():
            for host in hosts:
                self.inventory.add_host(host, group=group)
        for group, child_groups in site.children.items():
            for child in child_groups:
                self.inventory.add_child(group, child)
        for group, variables in site.group_vars.items():
            for name, value in variables.items():
                self.inventory.set_variable(group, name, value)
        for host, variables in site.hosts.items():
            for name, value in variables.items():
                self.inventory.set_variable(host, name, value)

    def _site_file_of_source(self, path: str) -> str:
        """The site file an inventory source file names, relative to the source file."""
        try:
            self._read_config_data(path)
            site_file = self.get_option("site_file")
        except AnsibleError as error:
            raise AnsibleParserError(f"{path}: {error.message}") from None
        return os.path.join(os.path.dirname(os.path.abspath(path)), site_file)
