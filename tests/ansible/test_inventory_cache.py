"""The inventory cache serves a site's inventory only while everything it was built from is unchanged."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ecohash.ansible import inventory as mapping
from ecohash.ansible.inventory import load_inventory
from ecohash.ansible.inventory_cache import cached_inventory, inventory_cache_dir
from tests.conftest import EXAMPLE_SITE, REPO

STANDARD_NAME = "standard.lock.yml"
SITE_WITH_STANDARD = EXAMPLE_SITE + f"""\
  provisioning:
    standard: {STANDARD_NAME}
"""


@pytest.fixture
def site_file(write_site, tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("ECOHASH_STATE_DIR", str(tmp_path / "state"))
    shutil.copy(REPO / "node-standard.lock.yml", tmp_path / STANDARD_NAME)
    return write_site(SITE_WITH_STANDARD)


@pytest.fixture
def builds(monkeypatch) -> list[Path]:
    """The sites the mapping was really run for, one entry per build."""
    built: list[Path] = []
    build = mapping.inventory_for

    def counting(site):
        built.append(site.file)
        return build(site)

    monkeypatch.setattr(mapping, "inventory_for", counting)
    return built


def cache_file() -> Path:
    (only,) = inventory_cache_dir().iterdir()
    return only


def test_a_second_read_of_an_unchanged_site_is_the_cached_inventory(site_file, builds):
    first = cached_inventory(site_file)
    second = cached_inventory(site_file)
    assert len(builds) == 1
    assert second.as_ansible_json() == first.as_ansible_json() == load_inventory(site_file).as_ansible_json()


def test_the_cache_is_readable_by_its_owner_alone(site_file):
    cached_inventory(site_file)
    assert cache_file().stat().st_mode & 0o777 == 0o600
    assert inventory_cache_dir().stat().st_mode & 0o777 == 0o700


def test_an_edit_of_the_site_file_rebuilds_the_inventory(site_file, builds):
    cached_inventory(site_file)
    site_file.write_text(site_file.read_text().replace("10.20.1.11", "10.20.1.99"))
    inventory = cached_inventory(site_file)
    assert len(builds) == 2
    assert inventory.hosts["c01-r01-n01"]["ansible_host"] == "10.20.1.99"


def test_an_edit_of_the_standard_rebuilds_the_inventory(site_file, builds, tmp_path):
    cached_inventory(site_file)
    standard = tmp_path / STANDARD_NAME
    standard.write_text(standard.read_text().replace("name: ecohash-node-2026.11", "name: ecohash-node-2099.01", 1))
    inventory = cached_inventory(site_file)
    assert len(builds) == 2
    assert inventory.all_vars["ecohash_standard"]["metadata"]["name"] == "ecohash-node-2099.01"


def test_another_state_directory_rebuilds_the_inventory(site_file, builds, tmp_path, monkeypatch):
    # The inventory names the state directory (secrets, kubeconfig): a copy made for
    # another one must not be served here.
    cached_inventory(site_file)
    old_cache = cache_file()
    monkeypatch.setenv("ECOHASH_STATE_DIR", str(tmp_path / "other-state"))
    (inventory_cache_dir()).mkdir(parents=True)
    shutil.copy(old_cache, inventory_cache_dir() / old_cache.name)
    inventory = cached_inventory(site_file)
    assert len(builds) == 2
    assert inventory.all_vars["ecohash_secrets_dir"].startswith(str(tmp_path / "other-state"))


@pytest.mark.parametrize("contents", [
    b"\x00\xffnot json at all",
    b'{"format": 1}',
    b"[1, 2, 3]",
], ids=["garbage", "missing-parts", "wrong-type"])
def test_a_corrupt_cache_is_ignored_and_rebuilt(site_file, builds, contents):
    cached_inventory(site_file)
    cache_file().write_bytes(contents)
    inventory = cached_inventory(site_file)
    assert len(builds) == 2
    cached_inventory(site_file)
    assert len(builds) == 2, "the rebuilt inventory was not cached again"
    assert inventory.as_ansible_json() == load_inventory(site_file).as_ansible_json()


def test_a_cache_with_a_changed_inventory_of_the_wrong_shape_is_ignored(site_file, builds):
    cached_inventory(site_file)
    path = cache_file()
    path.write_text(path.read_text().replace('"groups":{', '"groups":{"evil":[1],', 1))
    cached_inventory(site_file)
    assert len(builds) == 2


def test_a_cache_others_may_write_is_ignored(site_file, builds):
    cached_inventory(site_file)
    os.chmod(cache_file(), 0o666)
    cached_inventory(site_file)
    assert len(builds) == 2


def test_a_cache_that_is_a_link_is_ignored(site_file, builds, tmp_path):
    cached_inventory(site_file)
    path = cache_file()
    elsewhere = tmp_path / "elsewhere.json"
    path.rename(elsewhere)
    path.symlink_to(elsewhere)
    cached_inventory(site_file)
    assert len(builds) == 2


def test_a_broken_site_is_never_cached(write_site, tmp_path, monkeypatch):
    monkeypatch.setenv("ECOHASH_STATE_DIR", str(tmp_path / "state"))
    broken = write_site(EXAMPLE_SITE, ("grid_mw: 12.5", "grid_mw: -1"))
    with pytest.raises(Exception, match="grid_mw"):
        cached_inventory(broken)
    assert not inventory_cache_dir().exists() or not any(inventory_cache_dir().iterdir())
