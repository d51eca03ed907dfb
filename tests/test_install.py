"""A non-editable install: a wheel of ecohash, installed away from the checkout, runs on its own content.

The wheel is built from the working tree as git sees it (tracked and new files, no ignored
ones) with the pinned setuptools of this virtualenv and no index; it goes into a fresh
virtualenv whose only other path is this virtualenv's site-packages, for the dependencies
(Python reads no .pth file there, so the editable ecohash of the checkout stays out).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ecohash.errors import ContentNotFoundError
from ecohash.paths import CONTENT, collections_dir, content_root, project_root
from tests.conftest import REPO

SITE = REPO / "inventories" / "tx-odessa" / "site.yaml"


@dataclass(frozen=True)
class Installed:
    venv: Path
    package: Path
    work: Path  # a working directory outside the checkout, holding site.yaml

    def run(self, *arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(arguments, cwd=self.work, capture_output=True, text=True, timeout=120,
                              env={**os.environ, "ECOHASH_STATE_DIR": str(self.work / "state"), **(env or {})})

    def ecohash(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        return self.run(str(self.venv / "bin" / "ecohash"), *arguments)

    def python(self, code: str) -> str:
        result = self.run(str(self.venv / "bin" / "python"), "-c", code)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()


def _source_tree(destination: Path) -> Path:
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True, text=True, check=True).stdout
    for name in filter(None, listed.split("\0")):
        source, target = REPO / name, destination / name
        if source.is_symlink() or source.is_file():  # deleted but still tracked: skipped
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target, follow_symlinks=False)
    return destination


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    base = tmp_path_factory.mktemp("install")
    source = _source_tree(base / "source")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "-w", str(base / "dist"), str(source)], check=True, timeout=300)
    (wheel,) = (base / "dist").glob("ecohash-*.whl")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site_packages = Path(subprocess.run(
        [venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True).stdout.strip())
    (site_packages / "ecohash-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([*pip, "--python", str(venv / "bin" / "python"), "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True, timeout=300)
    work = base / "work"
    work.mkdir()
    shutil.copy(SITE, work / "site.yaml")
    yield Installed(venv=venv, package=site_packages / "ecohash", work=work)


@pytest.mark.slow
def test_the_installed_package_is_the_wheel_not_the_checkout(installed):
    assert Path(installed.python("import ecohash; print(ecohash.__file__)")) == installed.package / "__init__.py"


@pytest.mark.slow
def test_validate_plan_and_render_run_from_outside_the_checkout(installed):
    validate = installed.ecohash("validate", "site.yaml")
    assert (validate.returncode, validate.stderr) == (0, "")
    plan = installed.ecohash("plan", "site.yaml", "--json")
    assert (plan.returncode, plan.stderr) == (0, "")
    # The same roles and standard as the checkout's: the same budgets, caps and changes.
    checkout_plan = subprocess.run([str(Path(sys.executable).parent / "ecohash"), "plan", "site.yaml", "--json"],
                                   cwd=installed.work, capture_output=True, text=True, timeout=120,
                                   env={**os.environ, "ECOHASH_STATE_DIR": str(installed.work / "state")})
    assert json.loads(plan.stdout) == json.loads(checkout_plan.stdout)
    render = installed.ecohash("render", "site.yaml", "-o", "rendered")
    assert (render.returncode, render.stderr) == (0, "")
    assert list((installed.work / "rendered").rglob("*.yaml"))


@pytest.mark.slow
def test_the_content_resolves_inside_the_installed_package(installed):
    root, collections = installed.python(
        "from ecohash.paths import project_root, collections_dir; print(project_root()); print(collections_dir())"
    ).splitlines()
    assert Path(root) == installed.package / "collections" / "ansible_collections" / "ecohash" / "site"
    assert Path(collections) == installed.package / "collections"
    for name in ("roles/base/tasks/main.yml", "playbooks/bootstrap.yml", "templates/provision-report.html.j2",
                 "ansible.cfg", "node-standard.lock.yml", "plugins/inventory/ecohash_site.py"):
        assert (Path(root) / name).is_file(), name
    # A machine's stack config never ships.
    assert not list(Path(root, "stacks").glob("Pulumi.*.yaml"))
    # The JSON Schemas of the --json outputs (docs/json.md) ship as package data.
    assert installed.python("from ecohash.json_contract import published_schema; "
                            "print(published_schema('plan')['$id'])") == "https://ecohash.dev/schemas/plan.json"


@pytest.mark.slow
def test_ansible_finds_the_installed_collection_and_its_inventory_plugin(installed):
    root = installed.package / "collections" / "ansible_collections" / "ecohash" / "site"
    check = installed.run(str(installed.venv / "bin" / "python"), "-m", "ansible.cli.playbook", "--syntax-check",
                          "-i", "site.yaml", str(root / "playbooks" / "bootstrap.yml"),
                          env={"ANSIBLE_CONFIG": str(root / "ansible.cfg"),
                               "ANSIBLE_COLLECTIONS_PATH": str(installed.package / "collections")})
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.slow
def test_an_install_missing_its_roles_refuses_in_one_line(installed):
    root = installed.package / "collections" / "ansible_collections" / "ecohash" / "site"
    (root / "roles").rename(root / "roles.away")
    try:
        result = installed.ecohash("validate", "site.yaml")
    finally:
        (root / "roles.away").rename(root / "roles")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (f"ecohash: ecohash's Ansible content is incomplete: no roles in {root} (the installed"
                             " package's copy); reinstall ecohash from a wheel built from its repository, or run it"
                             " from a checkout\n")


def test_a_checkout_is_its_own_content_root():
    assert project_root() == REPO
    assert collections_dir() == REPO / "collections"
    assert (collections_dir() / "ansible_collections" / "ecohash" / "site").resolve() == REPO


def test_content_root_names_everything_missing(tmp_path):
    package = tmp_path / "lib" / "ecohash"
    root = package / "collections" / "ansible_collections" / "ecohash" / "site"
    root.mkdir(parents=True)
    for name in CONTENT:
        if name not in ("playbooks", "templates"):
            (root / name).touch()
    with pytest.raises(ContentNotFoundError, match=r"^ecohash's Ansible content is incomplete: no playbooks, "
                                                   rf"templates in {root} \(the installed package's copy\)"):
        content_root(package)
    (root / "playbooks").mkdir()
    (root / "templates").mkdir()
    assert content_root(package) == root


def test_a_package_with_no_content_names_both_layouts(tmp_path):
    package = tmp_path / "lib" / "python3.11" / "site-packages" / "ecohash"
    package.mkdir(parents=True)
    with pytest.raises(ContentNotFoundError) as raised:
        content_root(package)
    assert str(raised.value) == (
        f"ecohash's Ansible content is incomplete: no {', '.join(CONTENT)} in {tmp_path / 'lib' / 'python3.11'}"
        f" (a checkout's root; no wheel's copy at {package / 'collections/ansible_collections/ecohash/site'});"
        " reinstall ecohash from a wheel built from its repository, or run it from a checkout")
