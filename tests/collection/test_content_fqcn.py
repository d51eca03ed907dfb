"""What a run uses, when playbooks name the collection's roles by FQCN (ecohash.site.base)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ecohash.ansible.content import PlaybookContent, config_files
from ecohash.errors import EcohashError

TREE = {
    "galaxy.yml": "namespace: ns\nname: coll\nversion: 0.1.0\n",
    "ansible.cfg": "[defaults]\ncollections_path = ./collections\n",
    "plugins/modules/tool.py": "DOCUMENTATION = ''\n",
    "playbooks/site.yml": """\
        - name: Build
          hosts: all
          roles:
            - role: ns.coll.common
        """,
    "roles/common/tasks/main.yml": """\
        - name: Packages
          ansible.builtin.import_role:
            name: ns.coll.packages
        """,
    "roles/packages/tasks/main.yml": "- name: Nothing\n  ansible.builtin.meta: noop\n",
}


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def test_roles_named_by_the_collections_fqcn_are_its_roles_directories(tmp_path: Path) -> None:
    root = write(tmp_path, TREE)
    assert PlaybookContent(root, "site.yml").roles_for({}) == {"common", "packages"}


def test_a_role_that_is_not_in_roles_is_an_error_not_a_role_left_out(tmp_path: Path) -> None:
    # Without galaxy.yml, ns.coll.common is no directory here: its edits would go unhashed.
    root = write(tmp_path, {name: text for name, text in TREE.items() if name != "galaxy.yml"})
    with pytest.raises(EcohashError, match=r"playbooks run the role ns\.coll\.common, which is not in"):
        PlaybookContent(root, "site.yml").roles_for({})


def test_a_collections_plugins_are_part_of_what_a_run_uses(tmp_path: Path) -> None:
    # The modules the roles run by FQCN live in plugins/, which ansible.cfg no longer names.
    root = write(tmp_path, TREE)
    assert config_files(root) == ["ansible.cfg", "plugins"]
