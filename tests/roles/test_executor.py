"""The executor role without a host: the pins it installs are the lock's, and pip runs only
for the pins a virtualenv lacks. (Its run on a lab host: tests/rollout/test_executor_lab.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ecohash.bundle import wheels
from tests.ansible.test_remote import with_executor
from tests.conftest import REPO

PLAY = """
- hosts: localhost
  gather_facts: false
  vars_files: [{vars_file}]
  vars:
    executor_path: /opt/ecohash/executor/bin
    executor_requirements: "{{{{ lookup('ecohash.site.ecohash_executor_requirements') }}}}"
    executor_pip_list: {{stdout_lines: {pip_list}}}
  tasks:
    - ansible.builtin.copy:
        dest: {out}
        content: "{{{{ {{'requirements': executor_requirements, 'virtualenv': executor_virtualenv,
                     'missing': executor_missing}} | to_json }}}}"
        mode: "0600"
"""


EXECUTOR_PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.copy:
        dest: {out}
        content: "{{{{ query('ecohash.site.ecohash_executor', ansible_inventory_sources) | first | to_json }}}}"
        mode: "0600"
"""


def ansible_playbook(playbook: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}
    return subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), *arguments, "-c", "local",
         "-e", f"ansible_python_interpreter={sys.executable}", str(playbook)],
        capture_output=True, text=True, timeout=120, env=environment, check=False)


@pytest.mark.slow
def test_the_playbook_reaches_the_executor_as_the_site_reaches_its_nodes(tmp_path: Path, write_site) -> None:
    site = write_site(with_executor("host: 10.20.3.4\nuser: runner\nport: 2200"))
    out = tmp_path / "executor.json"
    playbook = tmp_path / "play.yml"
    playbook.write_text(EXECUTOR_PLAY.format(out=out))
    result = ansible_playbook(playbook, "-i", str(site))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # Not root: become, as on the nodes; host keys checked, as on the nodes.
    assert json.loads(out.read_text()) == {
        "name": "10.20.3.4", "ansible_host": "10.20.3.4", "ansible_user": "runner", "ansible_port": 2200,
        "ansible_become": True, "ansible_ssh_common_args": "-o StrictHostKeyChecking=yes",
    }


@pytest.mark.slow
def test_a_site_without_an_executor_is_refused_naming_the_key(tmp_path: Path, write_site) -> None:
    playbook = tmp_path / "play.yml"
    playbook.write_text(EXECUTOR_PLAY.format(out=tmp_path / "executor.json"))
    site = write_site()
    result = ansible_playbook(playbook, "-i", str(site))
    assert result.returncode == 2
    assert f"{site}: the site names no executor (spec.provisioning.executor)" in result.stdout


def role_view(tmp_path: Path, pip_list: list[str]) -> dict:
    """What the role's variables make of the lock and of pip's answer, rendered by Ansible."""
    out = tmp_path / "out.json"
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY.format(vars_file=REPO / "roles/executor/vars/main.yml",
                                    pip_list=json.dumps(pip_list), out=out))
    environment = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
         "-e", f"ansible_python_interpreter={sys.executable}", str(playbook)], capture_output=True, text=True, timeout=120, env=environment, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.slow
def test_the_role_installs_the_locks_executor_pins_with_their_hashes(tmp_path: Path) -> None:
    view = role_view(tmp_path, [])
    assert view["requirements"] == wheels.executor_requirements()
    assert "ansible-runner==" in view["requirements"] and "--hash=sha256:" in view["requirements"]
    # ansible-runner lives in the virtualenv's bin: the site's executor path is bin's parent's.
    assert view["virtualenv"] == "/opt/ecohash/executor"
    pins, _ = wheels.read_lock(REPO / wheels.LOCK_FILE_NAME)
    wanted = [f"{pin.name}=={pin.text.split('==')[1].split()[0]}" for pin in wheels.executor_pins(pins)]
    assert view["missing"] == wanted


@pytest.mark.slow
def test_pip_runs_only_for_pins_the_virtualenv_lacks_or_holds_at_another_version(tmp_path: Path) -> None:
    pins, _ = wheels.read_lock(REPO / wheels.LOCK_FILE_NAME)
    wanted = [f"{pin.name}=={pin.text.split('==')[1].split()[0]}" for pin in wheels.executor_pins(pins)]
    # pip lists names as the wheels spell them (PyYAML, python_daemon), and its own packages.
    installed = [{"pyyaml": "PyYAML", "python-daemon": "python_daemon", "markupsafe": "MarkupSafe"}
                 .get(pin.split("==")[0], pin.split("==")[0]) + "==" + pin.split("==")[1] for pin in wanted]
    assert role_view(tmp_path, [*installed, "pip==23.0.1", "setuptools==66.1.1"])["missing"] == []
    core = next(pin for pin in installed if pin.startswith("ansible-core=="))
    older = [pin for pin in installed if pin != core] + ["ansible-core==2.18.0"]
    assert role_view(tmp_path, older)["missing"] == [next(p for p in wanted if p.startswith("ansible-core=="))]


def test_the_executor_role_installs_its_apt_packages_through_apt_packages() -> None:
    tasks = yaml.safe_load((REPO / "roles/executor/tasks/main.yml").read_text())
    actions = [next(key for key in task if key.startswith(("ansible.", "ecohash.site."))) for task in tasks]
    assert "ansible.builtin.apt" not in actions
    imported = [task["ansible.builtin.import_role"]["name"] for task in tasks if "ansible.builtin.import_role" in task]
    assert imported == ["ecohash.site.apt_packages"]
