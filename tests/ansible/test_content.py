"""What a playbook run uses, derived from the files: imports, includes, dependencies, conditions."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from ansible.plugins.filter.core import to_bool

from ecohash.ansible.content import PlaybookContent, ansible_bool, config_files
from ecohash.errors import EcohashError


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


ROLE_TREE = {
    "playbooks/site.yml": """\
        - name: Find hosts
          ansible.builtin.import_playbook: reach.yml
        - name: Build
          ansible.builtin.import_playbook: build.yml
          vars:
            wanted_gpus: "{{ gpus | int > 0 }}"
        """,
    "playbooks/reach.yml": """\
        - name: Reach
          hosts: all
          tasks:
            - name: Ping
              ansible.builtin.ping:
        """,
    "playbooks/build.yml": """\
        - name: Build
          hosts: all
          vars:
            # A play var built on another, as node.yml's ecohash_has_gpus.
            has_gpus: "{{ wanted_gpus | bool }}"
          roles:
            - common
            - role: gpu
              when: has_gpus | bool
            - role: server
              when:
                - kind == 'server'
                - healthy | default(true)
          tasks:
            - name: Tools where the facts say so
              ansible.builtin.include_role:
                name: tools
              when: ansible_facts['os_family'] == 'Debian'
            - name: Never
              when: false
              block:
                - name: Unused
                  ansible.builtin.import_role:
                    name: unused
        """,
    # common: a nested import in a block of a file main.yml does not even import
    "roles/common/tasks/main.yml": "- name: Do\n  ansible.builtin.debug:\n",
    "roles/common/tasks/extra.yml": """\
        - name: Nested
          block:
            - name: Packages
              ansible.builtin.import_role:
                name: packages
        """,
    "roles/packages/tasks/main.yml": "[]\n",
    "roles/packages/meta/main.yml": "dependencies:\n  - role: cache\n",
    "roles/cache/tasks/main.yml": "[]\n",
    "roles/gpu/tasks/main.yml": """\
        - name: Driver
          include_role:
            name: driver
          when: never_known_before_the_run
        """,
    "roles/driver/meta/main.yml": "dependencies: [packages]\n",
    "roles/server/handlers/main.yml": """\
        - name: Restart
          ansible.builtin.include_role:
            name: restarter
        """,
    "roles/restarter/tasks/main.yml": "[]\n",
    "roles/tools/tasks/main.yml": "[]\n",
    "roles/unused/tasks/main.yml": "[]\n",
    "roles/orphan/tasks/main.yml": "[]\n",
}


@pytest.fixture
def content(tmp_path: Path) -> PlaybookContent:
    return PlaybookContent(write(tmp_path, ROLE_TREE), "site.yml")


def test_playbooks_are_followed_through_their_imports(content: PlaybookContent) -> None:
    assert content.files == ["playbooks/site.yml", "playbooks/reach.yml", "playbooks/build.yml"]


def test_roles_follow_imports_includes_and_dependencies_transitively(content: PlaybookContent) -> None:
    every_host = {"common", "packages", "cache", "tools"}  # tools: its condition needs facts
    assert content.roles_for({"gpus": 0, "kind": "agent"}) == every_host
    assert content.roles_for({"gpus": 8, "kind": "agent"}) == every_host | {"gpu", "driver"}
    assert content.roles_for({"gpus": 8, "kind": "server"}) == every_host | {"gpu", "driver", "server",
                                                                               "restarter"}
    assert content.roles_for({"gpus": 0, "kind": "server", "healthy": False}) == every_host


def test_a_condition_the_inventory_cannot_decide_keeps_the_role(content: PlaybookContent) -> None:
    # No `gpus`: wanted_gpus cannot be rendered, so the GPU role may run.
    assert {"gpu", "driver"} <= content.roles_for({"kind": "agent"})
    assert content.roles_for({"gpus": [8], "kind": "agent"}) >= {"common"}  # unhashable values too


def test_a_role_named_by_a_template_could_be_any_role(tmp_path: Path) -> None:
    root = write(tmp_path, {**ROLE_TREE, "roles/common/tasks/main.yml": """\
        - name: Whichever
          ansible.builtin.include_role:
            name: "{{ item }}"
          loop: [tools]
        """})
    assert content_roles(root) == {path.name for path in (root / "roles").iterdir()}


def content_roles(root: Path) -> frozenset[str]:
    return PlaybookContent(root, "site.yml").roles_for({"gpus": 0, "kind": "agent"})


def test_broken_yaml_is_named_by_file_and_line(tmp_path: Path) -> None:
    root = write(tmp_path, {**ROLE_TREE, "roles/cache/meta/main.yml": "dependencies: [a\n  b: c\n"})
    with pytest.raises(EcohashError, match=rf"^{root}/roles/cache/meta/main.yml:2: not YAML"):
        content_roles(root)


def test_ansible_cfg_and_the_plugin_directories_it_names(tmp_path: Path) -> None:
    write(tmp_path, {"ansible.cfg": "[defaults]\nroles_path = ./roles\ninventory_plugins = ./plugins/inventory\n"
                                    "filter_plugins = ./plugins/filter:/usr/share/elsewhere\n"})
    assert config_files(tmp_path) == ["ansible.cfg", "plugins/filter", "plugins/inventory"]
    assert config_files(tmp_path / "nowhere") == []


@pytest.mark.parametrize("value", [True, False, "yes", "No", "True", "false", "on", "OFF", 1, 0, "1", "0"])
def test_the_bool_filter_is_ansibles(value: object) -> None:
    assert ansible_bool(value) is to_bool(value)


# What a run uses when playbooks name the collection's roles by FQCN (ecohash.site.base).
FQCN_TREE = {
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


def test_roles_named_by_the_collections_fqcn_are_its_roles_directories(tmp_path: Path) -> None:
    root = write(tmp_path, FQCN_TREE)
    assert PlaybookContent(root, "site.yml").roles_for({}) == {"common", "packages"}


def test_a_role_that_is_not_in_roles_is_an_error_not_a_role_left_out(tmp_path: Path) -> None:
    # Without galaxy.yml, ns.coll.common is no directory here: its edits would go unhashed.
    root = write(tmp_path, {name: text for name, text in FQCN_TREE.items() if name != "galaxy.yml"})
    with pytest.raises(EcohashError, match=r"playbooks run the role ns\.coll\.common, which is not in"):
        PlaybookContent(root, "site.yml").roles_for({})


def test_a_collections_plugins_are_part_of_what_a_run_uses(tmp_path: Path) -> None:
    # The modules the roles run by FQCN live in plugins/, which ansible.cfg no longer names.
    root = write(tmp_path, FQCN_TREE)
    assert config_files(root) == ["ansible.cfg", "plugins"]
