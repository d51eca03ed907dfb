from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import ansible_runner
import pytest

from ecohash.ansible.runner import PlaybookRun, run_playbook
from tests.conftest import REPO


def test_a_run_searches_only_ecohash_s_own_collections(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # ansible-runner hands ansible-playbook this process's environment with envvars over it:
    # a collections path set here must not let another ecohash.site stand in for ours.
    monkeypatch.setenv("ANSIBLE_COLLECTIONS_PATH", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("ECOHASH_STATE_DIR", str(tmp_path / "state"))
    calls: list[dict[str, Any]] = []

    def run(**kwargs: Any) -> SimpleNamespace:
        calls.append(kwargs)
        return SimpleNamespace(rc=0, status="successful", stats={})

    monkeypatch.setattr(ansible_runner, "run", run)
    request = PlaybookRun(site_name="tx-odessa", site_file=REPO / "inventories/tx-odessa/site.yaml",
                          playbook="bootstrap.yml", directory=tmp_path / "run")

    run_playbook(request, lambda progress: None)

    (call,) = calls
    assert call["envvars"]["ANSIBLE_COLLECTIONS_PATH"] == str(REPO / "collections")
    assert call["envvars"]["ANSIBLE_CONFIG"] == str(REPO / "ansible.cfg")
    assert call["playbook"] == str(REPO / "playbooks" / "bootstrap.yml")
