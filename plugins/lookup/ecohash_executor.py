"""Ansible lookup: the site's executor (spec.provisioning.executor), as add_host takes it.

playbooks/executor.yml adds the executor to its play with this lookup instead of finding it
in the inventory: the executor is no node of the site, and an inventory host would be one
more host for every node play (`hosts: all`) to set aside. Where it is reached, as whom and
with which ssh arguments (the site's ssh_config, host keys checked) are the site's own
rules, ecohash.ansible.remote.Executor and the inventory's connection variables, never a
second copy.
"""

from __future__ import annotations

import os

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase
from ansible_collections.ecohash.site.plugins.inventory.ecohash_site import (
    SITE_FILE_NAMES,
    SOURCE_FILE_SUFFIXES,
)

DOCUMENTATION = r"""
name: ecohash_executor
short_description: The site-local executor an ecohash site file names, as add_host takes it
version_added: "0.1.0"
author: ecohash
description:
  - Reads the site file among the inventory sources (a site file, or an inventory source file
    naming one) and returns its spec.provisioning.executor as host variables for
    M(ansible.builtin.add_host) - C(name), C(ansible_host), C(ansible_user), C(ansible_port),
    C(ansible_become) and the site's C(ansible_ssh_common_args).
  - Fails, naming the key, when the site names no executor.
requirements:
  - The ecohash Python package on the controller.
options:
  _terms:
    description: The play's inventory sources (C(ansible_inventory_sources)).
    type: list
    elements: path
    required: true
"""

EXAMPLES = r"""
- name: Add the executor
  ansible.builtin.add_host:
    name: "{{ executor.name }}"
    groups: ecohash_executor
    ansible_host: "{{ executor.ansible_host }}"
  vars:
    executor: "{{ query('ecohash.site.ecohash_executor', ansible_inventory_sources) | first }}"
"""

RETURN = r"""
_raw:
  description: One dictionary of the executor's name and connection variables.
  type: list
  elements: dict
"""

class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):  # noqa: ANN001, ANN003, ANN201 - Ansible's signature
        try:
            from ecohash.ansible.inventory import group_name, inventory_for
            from ecohash.ansible.remote import Executor
            from ecohash.errors import EcohashError
            from ecohash.inventory.loader import load_site
        except ImportError as error:
            raise AnsibleLookupError(
                f"ecohash_executor needs the ecohash package ({error}); "
                "run scripts/install and use .venv/bin/ansible-playbook"
            ) from None
        # ansible_inventory_sources is a list: one term, or each source a term of its own.
        sources = [str(path) for term in terms
                   for path in (term if isinstance(term, (list, tuple)) else [term])]
        site_files = [site_file for site_file in map(self._site_file, sources) if site_file]
        if len(site_files) != 1:
            raise AnsibleLookupError(
                f"ecohash_executor needs exactly one ecohash site file among the inventory sources; "
                f"got {', '.join(sources) or 'none'}"
            )
        try:
            site = load_site(site_files[0])
            executor = Executor.of_site(site)
            if executor is None:
                raise AnsibleLookupError(
                    f"{site.file}: the site names no executor (spec.provisioning.executor)"
                )
            connection = inventory_for(site).group_vars[group_name("site", site.name)]
        except EcohashError as error:
            raise AnsibleLookupError(str(error)) from None
        return [{
            "name": executor.name,
            "ansible_host": executor.address,
            "ansible_user": executor.user,
            "ansible_port": executor.port,
            "ansible_become": executor.user != "root",
            "ansible_ssh_common_args": connection["ansible_ssh_common_args"],
        }]

    def _site_file(self, source: str) -> str | None:
        """The site file a source is or names; None for any other inventory source."""
        name = os.path.basename(source)
        if name in SITE_FILE_NAMES:
            return source
        if name.endswith(SOURCE_FILE_SUFFIXES):
            named = self._loader.load_from_file(source).get("site_file")
            return os.path.join(os.path.dirname(os.path.abspath(source)), named) if named else None
        return None
