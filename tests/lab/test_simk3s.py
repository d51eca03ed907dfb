"""The SIMULATED k3s without a lab: its configuration, kubectl's label and taint rules."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ecohash.lab import k3s_sim, simk3s

CONFIG = """\
# Managed by ecohash
node-name: c01-r01-n01
node-ip: 10.213.0.11
cluster-init: true
write-kubeconfig-mode: "0600"
disable:
  - traefik
node-label:
  - "ecohash.io/site=lab"
  - "ecohash.io/rack=r01"
node-taint:
  - "nvidia.com/gpu=present:PreferNoSchedule"
"""


def node() -> dict:
    return {"metadata": {"name": "n1", "labels": {"ecohash.io/rack": "r01", "a": "1"}},
            "spec": {"taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "PreferNoSchedule"}]}}


def test_the_stand_in_says_which_release_it_simulates(tmp_path: Path) -> None:
    path, sha256 = simk3s.build(tmp_path, "v1.35.6+k3s1")
    text = path.read_text()
    assert 'VERSION = "v1.35.6+k3s1"' in text and "SIMULATED" in text
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sha256


def test_a_node_registers_with_the_labels_and_taints_of_its_configuration(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(CONFIG)
    registered = k3s_sim.node_from_config(k3s_sim.read_config(tmp_path / "config.yaml"))
    assert registered["metadata"] == {
        "name": "c01-r01-n01", "labels": {"ecohash.io/site": "lab", "ecohash.io/rack": "r01"}}
    assert registered["spec"]["taints"] == [
        {"key": "nvidia.com/gpu", "value": "present", "effect": "PreferNoSchedule"}]


def test_label_overwrites_only_when_asked_and_removes_with_a_dash() -> None:
    changed = node()
    with pytest.raises(k3s_sim.K3sError, match="already has a value"):
        k3s_sim.label(changed, ["ecohash.io/rack=r02"], overwrite=False)
    assert k3s_sim.label(changed, ["ecohash.io/rack=r02", "a-"], overwrite=True) == "labeled"
    assert changed["metadata"]["labels"] == {"ecohash.io/rack": "r02"}


def test_taint_adds_replaces_and_removes_like_kubectl() -> None:
    changed = node()
    with pytest.raises(k3s_sim.K3sError, match="--overwrite is false"):
        k3s_sim.taint(changed, ["nvidia.com/gpu=many:PreferNoSchedule"], overwrite=False)
    k3s_sim.taint(changed, ["nvidia.com/gpu=many:PreferNoSchedule"], overwrite=True)
    assert changed["spec"]["taints"] == [{"key": "nvidia.com/gpu", "value": "many", "effect": "PreferNoSchedule"}]
    assert k3s_sim.taint(changed, ["nvidia.com/gpu:PreferNoSchedule-"], overwrite=False) == "untainted"
    assert changed["spec"]["taints"] == []
    with pytest.raises(k3s_sim.K3sError, match='taint "nvidia.com/gpu:PreferNoSchedule" not found'):
        k3s_sim.taint(changed, ["nvidia.com/gpu:PreferNoSchedule-"], overwrite=False)


def test_what_is_not_simulated_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert k3s_sim.main(["etcd-snapshot"]) == 1
    assert "SIMULATED" in capsys.readouterr().err


def test_a_kubeconfig_unreadable_for_a_reason_the_os_does_not_name_is_still_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> str:
        raise OSError("refused by a FUSE file system")  # no errno, so no strerror

    monkeypatch.setattr(Path, "read_text", refuse)
    kubeconfig = tmp_path / "kubeconfig"
    with pytest.raises(k3s_sim.K3sError) as error:
        k3s_sim.client(kubeconfig)
    assert str(error.value) == f"error: open {kubeconfig}: refused by a fuse file system"
