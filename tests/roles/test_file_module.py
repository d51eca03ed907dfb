"""ecohash.site.ecohash_file run by Ansible on this machine, no lab, side by side with
ansible.builtin.template: the same bytes, owner and mode, the same changes and the same
drift text, in one module run where Ansible's own takes two.

Module runs are counted by the interpreter Ansible starts for each: a wrapper that logs
every start and then runs this Python.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import ansible_runner
import pytest
import yaml

from ecohash.ansible.runner import task_change
from ecohash.paths import project_root
from tests.conftest import REPO

TEMPLATE = """\
{{ ansible_managed | comment }}
{% for name in names %}
server {{ name }} iburst
{% endfor %}
makestep 1 3
"""
WRAPPER = """\
#!/bin/sh
echo run >> "{log}"
exec "{python}" "$@"
"""

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="the files are given to root, as on a node"),
              pytest.mark.slow]


def run(tmp_path: Path, tasks: list[dict[str, Any]], check: bool = False) -> tuple[list[dict[str, Any]], int]:
    """Run `tasks` against this machine; (each task's result in order, module runs)."""
    (tmp_path / "templates").mkdir(exist_ok=True)
    (tmp_path / "templates" / "chrony.conf.j2").write_text(TEMPLATE)
    log = tmp_path / "module-runs"
    log.write_text("")
    python = tmp_path / "python"
    python.write_text(WRAPPER.format(log=log, python=sys.executable))
    python.chmod(0o755)
    directory = tmp_path / f"run-{len(list(tmp_path.glob('run-*')))}"
    (directory / "project").mkdir(parents=True)
    play = [{"hosts": "localhost", "gather_facts": False, "vars": {"names": ["a.ntp", "b.ntp"]}, "tasks": tasks}]
    (directory / "project" / "play.yml").write_text(json.dumps(play))
    (directory / "project" / "templates").symlink_to(tmp_path / "templates")
    runner = ansible_runner.run(
        private_data_dir=str(directory), playbook="play.yml",
        cmdline="--inventory localhost, --connection local --diff" + (" --check" if check else ""),
        extravars={"ansible_python_interpreter": str(python)},
        envvars={"ANSIBLE_CONFIG": str(project_root() / "ansible.cfg"),
                 "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])},
        quiet=True,
    )  # fmt: skip
    assert runner.rc == 0, "\n".join(e.get("stdout", "") for e in runner.events)
    results = [e["event_data"] for e in runner.events if e.get("event") == "runner_on_ok"]
    return results, len(log.read_text().splitlines())


def template_task(module: str, dest: Path, mode: str = "0644") -> dict[str, Any]:
    return {"name": "Configure chrony",
            module: {"src": "chrony.conf.j2", "dest": str(dest), "owner": "root", "group": "root", "mode": mode}}


def drift(result: dict[str, Any]) -> tuple[str | None, str | None]:
    change = task_change(result, result["res"])
    return change.path, change.diff


def test_the_same_file_as_ansibles_template_in_one_module_run(tmp_path: Path) -> None:
    builtin, ours = tmp_path / "builtin.conf", tmp_path / "ours.conf"
    results, _ = run(tmp_path, [template_task("ansible.builtin.template", builtin),
                                template_task("ecohash.site.ecohash_file", ours)])
    assert [r["res"]["changed"] for r in results] == [True, True]
    assert ours.read_bytes() == builtin.read_bytes()
    assert ours.read_text().endswith("server b.ntp iburst\nmakestep 1 3\n")
    assert oct(ours.stat().st_mode & 0o7777) == oct(builtin.stat().st_mode & 0o7777) == "0o644"

    # Already right: nothing changes; Ansible's template runs two modules, this one one.
    results, builtin_runs = run(tmp_path, [template_task("ansible.builtin.template", builtin)])
    assert results[0]["res"]["changed"] is False and builtin_runs == 2
    results, our_runs = run(tmp_path, [template_task("ecohash.site.ecohash_file", ours)])
    assert results[0]["res"]["changed"] is False and our_runs == 1


@pytest.mark.parametrize("check", [True, False])
def test_content_and_mode_drift_read_as_with_ansibles_template(tmp_path: Path, check: bool) -> None:
    builtin, ours = tmp_path / "builtin.conf", tmp_path / "ours.conf"
    run(tmp_path, [template_task("ansible.builtin.template", builtin),
                   template_task("ecohash.site.ecohash_file", ours)])
    for path in (builtin, ours):
        path.write_text(path.read_text().replace("a.ntp", "rogue.ntp"))
        path.chmod(0o600)
    results, _ = run(tmp_path, [template_task("ansible.builtin.template", builtin),
                                template_task("ecohash.site.ecohash_file", ours)], check=check)
    assert [r["res"]["changed"] for r in results] == [True, True]
    (builtin_path, builtin_diff), (our_path, our_diff) = map(drift, results)
    assert our_path == str(ours) and builtin_path == str(builtin)
    assert our_diff == builtin_diff.replace(str(builtin), str(ours))
    assert "-server rogue.ntp iburst\n+server a.ntp iburst\n" in our_diff
    assert ("rogue.ntp" in ours.read_text()) is check
    assert oct(ours.stat().st_mode & 0o7777) == ("0o600" if check else "0o644")


def test_a_missing_file_in_check_mode_is_a_change_that_writes_nothing(tmp_path: Path) -> None:
    ours = tmp_path / "ours.conf"
    results, _ = run(tmp_path, [template_task("ecohash.site.ecohash_file", ours)], check=True)
    assert results[0]["res"]["changed"] is True and not ours.exists()
    path, diff = drift(results[0])
    assert path == str(ours) and "+server a.ntp iburst\n" in diff


def test_content_given_inline_and_a_mode_change_alone(tmp_path: Path) -> None:
    ours = tmp_path / "modules.conf"
    task = {"name": "Load kernel modules", "ecohash.site.ecohash_file": {
        "content": "br_netfilter\noverlay\n", "dest": str(ours), "owner": "root", "group": "root", "mode": "0644"}}
    run(tmp_path, [task])
    assert ours.read_text() == "br_netfilter\noverlay\n"
    ours.chmod(0o640)
    results, runs = run(tmp_path, [task])
    assert results[0]["res"]["changed"] is True and runs == 1
    assert drift(results[0]) == (str(ours), "mode: 0640 -> 0644\n")


def test_the_roles_write_files_with_it_not_with_ansibles_template_or_copy_of_content() -> None:
    """Every file a role renders or writes from content goes through ecohash_file: one module
    run per file on an idempotent run (a copy of a file from files/ stays ansible.builtin.copy)."""
    left = []
    for path in sorted((REPO / "roles").glob("*/tasks/*.yml")):
        for task in yaml.safe_load(path.read_text()) or []:
            copy = task.get("ansible.builtin.copy") or {}
            if "ansible.builtin.template" in task or "content" in copy:
                left.append(f"{path.relative_to(REPO)}: {task['name']}")
    assert left == []
