"""The site registry ecohash runs where a site has none: Debian's docker-registry, our config."""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from ecohash import process
from ecohash.bundle import siteregistry
from ecohash.errors import EcohashError
from tests.bundle.loadhelpers import free_port

needs_registry = pytest.mark.skipif(shutil.which("docker-registry") is None,
                                    reason="needs Debian's docker-registry")


def test_the_config_has_no_auth_and_binds_only_the_sites_address(tmp_path: Path) -> None:
    written = siteregistry.config(tmp_path / "storage", "10.213.0.1:5000")
    assert "auth" not in written  # the packaged config's htpasswd auth, with no users, is gone
    assert written["http"]["addr"] == "10.213.0.1:5000"  # type: ignore[index]
    assert written["storage"]["filesystem"] == {"rootdirectory": str(tmp_path / "storage")}  # type: ignore[index]


@needs_registry
def test_ensure_running_starts_one_where_none_answers_and_reuses_it(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    daemon = siteregistry.ensure_running(url, tmp_path / "registry", tmp_path / "log")
    assert daemon is not None
    try:
        with urllib.request.urlopen(f"{url}/v2/", timeout=5) as answer:  # no credentials asked
            assert answer.status == 200
        assert siteregistry.ensure_running(url, tmp_path / "other", tmp_path / "log") is None
        config = yaml.safe_load((tmp_path / "registry" / "config.yml").read_text())
        assert config["storage"]["filesystem"]["rootdirectory"] == str(tmp_path / "registry" / "storage")
    finally:
        process.stop_all([daemon])
    # Refused or reset (a connection caught while it exits): either way no registry answers.
    assert not siteregistry.answers(url)


def test_a_registry_on_another_machine_is_not_started_here(tmp_path: Path) -> None:
    # 192.0.2.0/24 is TEST-NET-1: never an address of this machine, and nothing answers there.
    with pytest.raises(EcohashError, match="192.0.2.7 is not this machine"):
        siteregistry.ensure_running("http://192.0.2.7:5000", tmp_path, tmp_path / "log")
    assert not (tmp_path / "config.yml").exists()


def test_https_is_not_started_by_ecohash(tmp_path: Path) -> None:
    with pytest.raises(EcohashError, match="plain http only"):
        siteregistry.start("https://127.0.0.1:5000", tmp_path, tmp_path / "log")
