"""The repository root as the collection ecohash.site: what the build ships, what an installed
copy offers Ansible, and the checks Galaxy and ansible-builder make."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tarfile
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet

from ecohash.ansible.roledocs import render_role_readme
from tests.collection.build import BIN, FQCN, GALAXY, REPO, installed_environment

PLUGIN = f"{FQCN}.ecohash_site"
SOURCE_FILE = REPO / "examples" / "awx" / "inventories" / "tx-odessa.ecohash.yml"
# What a collection must never carry: the checkout's machinery, tests and what it builds.
FORBIDDEN = (".venv", ".venv-importer", ".git", "tests", "cli", "bench", "build", "collections",
             "inventories", "stacks", ".ruff_cache", ".hypothesis", ".pytest_cache", "__pycache__")
# The files ansible-galaxy writes into every collection artifact.
ARTIFACT_FILES = {"MANIFEST.json", "FILES.json"}


def tracked(*paths: str) -> set[str]:
    listed = subprocess.run(["git", "-C", REPO, "ls-files", "-z", "--", *paths],
                            check=True, capture_output=True, text=True).stdout
    return {name for name in listed.split("\0") if name}


def run(command: list[str | Path], collections: Path | None, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, check=False,
                          env=installed_environment(collections))


def test_the_collection_version_is_the_python_package_version() -> None:
    package = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert GALAXY["version"] == package


def test_requires_ansible_admits_the_locked_ansible_core_and_nothing_before_2_19() -> None:
    required = SpecifierSet(yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())["requires_ansible"])
    locked = re.search(r"^ansible-core==(\S+)", (REPO / "requirements.lock").read_text(), re.MULTILINE)
    assert locked is not None
    assert locked.group(1) in required
    assert "2.18.99" not in required


def test_the_build_ships_every_tracked_role_playbook_and_plugin_file_and_nothing_else(tarball: Path) -> None:
    with tarfile.open(tarball) as archive:
        files = {member.name for member in archive.getmembers() if member.isfile()}
    expected = tracked("roles", "playbooks", "plugins", "meta")
    assert expected - files == set()
    # roles/*/files and templates hold what Ansible's default manifest would leave out.
    assert {name for name in expected if "/files/" in name} <= files
    assert "roles/node_health/templates/.keep" in files
    shipped = files - ARTIFACT_FILES
    # Nothing a checkout has but git does not track (a virtualenv, caches, build output)...
    assert shipped - tracked() == set()
    # ...and of what git tracks, none of the checkout's own machinery.
    assert [name for name in shipped if name.split("/")[0] in FORBIDDEN or "__pycache__" in name] == []
    assert {"README.md", "CHANGELOG.md", "meta/runtime.yml", "meta/execution-environment.yml",
            "meta/requirements.txt"} <= files


@pytest.mark.parametrize("role", sorted(path.name for path in (REPO / "roles").iterdir()))
def test_each_role_readme_is_its_argument_specs(role: str) -> None:
    # Galaxy refuses roles without a README; run scripts/gen-docs after editing a spec.
    assert (REPO / "roles" / role / "README.md").read_text() == render_role_readme(REPO / "roles" / role, FQCN)


def test_ansible_doc_shows_the_installed_inventory_plugin(collections: Path, tmp_path: Path) -> None:
    result = run([BIN / "ansible-doc", "-t", "inventory", "--json", PLUGIN], collections, tmp_path)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)[PLUGIN]["doc"]
    assert doc["filename"].startswith(str(collections))
    assert doc["options"]["plugin"]["choices"] == [PLUGIN]
    assert doc["options"]["site_file"]["type"] == "str"
    assert doc["options"]["site_file"]["required"] is True


@pytest.mark.slow
def test_an_awx_source_file_gives_the_same_inventory_installed_as_from_the_checkout(
        collections: Path, tmp_path: Path) -> None:
    listing = ["--list", "--export", "-i", SOURCE_FILE]
    # Outside the checkout, no ansible.cfg: Ansible's default `auto` plugin reads `plugin:`.
    installed = run([BIN / "ansible-inventory", *listing], collections, tmp_path)
    assert installed.returncode == 0, installed.stderr
    # In the checkout, its ansible.cfg enables the plugin by FQCN through collections/.
    checkout = run([BIN / "ansible-inventory", *listing], None, REPO)
    assert checkout.returncode == 0, checkout.stderr
    site = run([BIN / "ansible-inventory", "--list", "--export", "-i", "inventories/tx-odessa/site.yaml"],
               None, REPO)
    inventory = json.loads(installed.stdout)
    assert inventory == json.loads(checkout.stdout) == json.loads(site.stdout)
    assert "c01-r01-n01" in inventory["rack_c01_r01"]["hosts"]


@pytest.mark.slow
def test_a_source_file_without_its_site_file_is_refused_by_name(tmp_path: Path) -> None:
    source = tmp_path / "broken.ecohash.yml"
    source.write_text(f"plugin: {PLUGIN}\n")
    # The checkout's ansible.cfg makes a source that fails to parse an error.
    result = run([BIN / "ansible-inventory", "--list", "-i", source], None, REPO)
    assert result.returncode != 0
    assert f"{source}: Required config 'site_file'" in result.stderr


@pytest.mark.slow
def test_the_installed_playbooks_and_the_checkouts_pass_a_syntax_check(collections: Path, tmp_path: Path) -> None:
    for name in ("bootstrap", "verify"):
        installed = run([BIN / "ansible-playbook", "--syntax-check", "-i", SOURCE_FILE, f"{FQCN}.{name}"],
                        collections, tmp_path)
        assert installed.returncode == 0, installed.stdout + installed.stderr
        checkout = run([BIN / "ansible-playbook", "--syntax-check", "-i", "inventories/tx-odessa/site.yaml",
                        f"playbooks/{name}.yml"], None, REPO)
        assert checkout.returncode == 0, checkout.stdout + checkout.stderr


def test_ansible_builder_accepts_the_execution_environment(tarball: Path, tmp_path: Path) -> None:
    # ansible-builder copies the files the definition names, as a user's build would have them.
    (tmp_path / "execution-environment.yml").write_text((REPO / "execution-environment.yml").read_text())
    files = tmp_path / "build" / "ee"
    files.mkdir(parents=True)
    (files / "requirements.lock").write_text((REPO / "requirements.lock").read_text())
    (files / tarball.name).write_bytes(tarball.read_bytes())
    (files / "ecohash-0.1.0-py3-none-any.whl").write_bytes(b"")  # a wheel's name; create copies it only
    result = run([BIN / "ansible-builder", "create", "-f", "execution-environment.yml", "-c", "context"],
                 None, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    containerfile = next((tmp_path / "context").glob("*file")).read_text()
    assert "pip install --no-cache-dir --require-hashes -r /build/ecohash/requirements.lock" in containerfile
    assert "ansible-galaxy collection install /build/ecohash/ecohash-site-" in containerfile
    assert (tmp_path / "context" / "_build" / "ecohash" / tarball.name).is_file()


IMPORTER = REPO / ".venv-importer" / "bin" / "python"


@pytest.mark.slow
def test_galaxy_importer_accepts_the_built_collection(tarball: Path, tmp_path: Path) -> None:
    if not IMPORTER.is_file():
        assert not os.environ.get("CI"), "CI runs scripts/install --test, which makes .venv-importer"
        pytest.skip("galaxy-importer's virtualenv is absent (scripts/install --test makes .venv-importer)")
    config = tmp_path / "galaxy-importer.cfg"
    # Galaxy's own import, less ansible-test (it needs a container engine).
    config.write_text("[galaxy-importer]\nrun_ansible_test = False\nrun_ansible_lint = True\n"
                      "run_ansible_doc = True\ncheck_changelog = True\n")
    environment = installed_environment(None)
    environment["PATH"] = os.pathsep.join([str(IMPORTER.parent), environment["PATH"]])
    environment["GALAXY_IMPORTER_CONFIG"] = str(config)
    result = subprocess.run([IMPORTER, "-m", "galaxy_importer.main", tarball],
                            capture_output=True, text=True, cwd=tmp_path, env=environment, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Importer processing completed successfully" in output
    # The importer logs what it would show a Galaxy user as a warning or an error.
    assert [line for line in output.splitlines() if line.startswith(("WARNING", "ERROR"))] == [], output
