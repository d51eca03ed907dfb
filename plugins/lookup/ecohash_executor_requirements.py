"""Ansible lookup: the executor's pip requirements, with requirements.lock's hashes.

The executor role installs ansible-core and ansible-runner from the site mirror's wheels with
pip --require-hashes. The hashes come from this lookup, on the controller, so they reach the
executor over SSH and never from the mirror whose wheels they check; and they are the lock's
own (ecohash.bundle.wheels, the rule `ecohash bundle build` downloads the wheels by), never a
second list.
"""

from __future__ import annotations

from pathlib import Path

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

DOCUMENTATION = r"""
name: ecohash_executor_requirements
short_description: The site-local executor's pip requirements, pinned and hashed as requirements.lock has them
version_added: "0.1.0"
author: ecohash
description:
  - Returns one string, a pip requirements file naming ansible-core, ansible-runner and
    everything requirements.lock says they pulled in, each pin with the lock's hashes.
  - The same pins that C(ecohash bundle build) downloads the executor's wheels by.
requirements:
  - The ecohash Python package on the controller.
options:
  _terms:
    description: The lock file to read; default the checkout's requirements.lock.
    type: list
    elements: path
    required: false
"""

EXAMPLES = r"""
- name: Show what the executor installs
  ansible.builtin.debug:
    msg: "{{ lookup('ecohash.site.ecohash_executor_requirements') }}"
"""

RETURN = r"""
_raw:
  description: The requirements file's text, one element.
  type: list
  elements: str
"""


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):  # noqa: ANN001, ANN003, ANN201 - Ansible's signature
        try:
            from ecohash.bundle.wheels import executor_requirements
            from ecohash.errors import EcohashError
        except ImportError as error:
            raise AnsibleLookupError(
                f"ecohash_executor_requirements needs the ecohash package ({error}); "
                "run scripts/install and use .venv/bin/ansible-playbook"
            ) from None
        if len(terms) > 1:
            raise AnsibleLookupError("ecohash_executor_requirements takes one lock file at most")
        try:
            return [executor_requirements(Path(terms[0]) if terms else None)]
        except EcohashError as error:
            raise AnsibleLookupError(str(error)) from None
