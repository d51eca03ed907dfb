"""The site registry's tasks run by Ansible on this machine, no lab: container_runtime's
certs.d directories and inference_runtime's pre-pull, in real and in check mode.

containerd's directory is a temporary one, and `ctr` a stand-in on PATH that lists the
images a test gives it and records each call, so what the tasks decide is seen exactly.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import ansible_runner
import pytest

from ecohash.paths import project_root

REFERENCE = "10.20.0.5:5000/vllm/vllm-openai@sha256:" + "ab" * 32
FAKE_CTR = """\
#!/bin/sh
# Stand-in for containerd's ctr: lists the images in $CTR_IMAGES, records every call.
echo "$@" >> "$CTR_CALLS"
case "$*" in
  *" images list "*) cat "$CTR_IMAGES";;
esac
"""


def run_tasks(tmp_path: Path, role: str, tasks_from: str, variables: dict[str, Any],
              check: bool = False) -> dict[str, list[dict[str, Any]]]:
    """Run one task file of a role against this machine; each task's results by task name."""
    play = [{
        "hosts": "localhost", "gather_facts": False,
        "tasks": [{"ansible.builtin.include_role": {"name": f"ecohash.site.{role}", "tasks_from": tasks_from}}],
    }]
    directory = tmp_path / f"run-{len(list(tmp_path.glob('run-*')))}"
    (directory / "project").mkdir(parents=True)
    (directory / "project" / "play.yml").write_text(json.dumps(play))
    runner = ansible_runner.run(
        private_data_dir=str(directory), playbook="play.yml",
        # A host list, which the repository's ansible.cfg allows besides site files.
        cmdline="--inventory localhost, --connection local" + (" --check --diff" if check else ""),
        extravars={"ansible_python_interpreter": sys.executable, **variables},
        envvars={
            "ANSIBLE_CONFIG": str(project_root() / "ansible.cfg"),
            "PATH": os.pathsep.join([str(tmp_path / "bin"), str(Path(sys.executable).parent), os.environ["PATH"]]),
            "CTR_IMAGES": str(tmp_path / "images"), "CTR_CALLS": str(tmp_path / "calls"),
        },
        quiet=True,
    )  # fmt: skip
    assert runner.rc == 0, "\n".join(e.get("stdout", "") for e in runner.events)
    results: dict[str, list[dict[str, Any]]] = {}
    for event in runner.events:
        if event.get("event") in ("runner_on_ok", "runner_on_skipped"):
            data = event["event_data"]
            results.setdefault(data["task"], []).append(data.get("res", {}))
    return results


def changed_tasks(results: dict[str, list[dict[str, Any]]]) -> list[str]:
    return sorted(task for task, outcomes in results.items() if any(r.get("changed") for r in outcomes))


@pytest.fixture
def certs_d(tmp_path: Path) -> Path:
    directory = tmp_path / "certs.d"
    directory.mkdir()
    return directory


def registry_tasks(tmp_path: Path, certs_d: Path, registry: str | None) -> dict[str, list[dict[str, Any]]]:
    return run_tasks(tmp_path, "container_runtime", "registry", {
        "container_runtime_registry": registry, "container_runtime_registry_config_dir": str(certs_d),
    })  # fmt: skip


@pytest.mark.skipif(os.geteuid() != 0, reason="the tasks give their files to root, as on a node")
@pytest.mark.slow
def test_the_registry_is_configured_and_removed_when_the_inventory_drops_it(
    tmp_path: Path, certs_d: Path
) -> None:
    (certs_d / "quay.io").mkdir()  # configured by someone else: never ecohash's to remove
    (certs_d / "quay.io" / "hosts.toml").write_text('server = "https://quay.io"\n')
    registry_tasks(tmp_path, certs_d, "http://10.20.0.5:5000/mirror")
    assert sorted(p.name for p in certs_d.iterdir()) == [
        "10.20.0.5:5000", "docker.io", "ghcr.io", "nvcr.io", "quay.io", "registry.k8s.io",
    ]
    # containerd 1.6 ignores a hosts.toml without a host table: the server is its one host.
    assert (certs_d / "10.20.0.5:5000" / "hosts.toml").read_text().endswith(
        'server = "http://10.20.0.5:5000"\n\n[host."http://10.20.0.5:5000"]\n  capabilities = ["pull", "resolve"]\n'
    )
    # The registry keeps the upstream images under its path: the mirror's API root is given in full.
    mirror = (certs_d / "nvcr.io" / "hosts.toml").read_text()
    assert mirror.endswith(
        '[host."http://10.20.0.5:5000/v2/mirror"]\n  capabilities = ["pull", "resolve"]\n  override_path = true\n'
    )
    # Upstream stays containerd's default server (registry-1.docker.io for docker.io).
    assert "server =" not in (certs_d / "docker.io" / "hosts.toml").read_text()

    moved = registry_tasks(tmp_path, certs_d, "registry.site.example")
    assert "Remove the registry directories ecohash made that the inventory no longer names" in changed_tasks(moved)
    assert not (certs_d / "10.20.0.5:5000").exists()
    # Without a scheme, https (as containerd assumes).
    assert 'server = "https://registry.site.example"\n' in (
        certs_d / "registry.site.example" / "hosts.toml"
    ).read_text()
    assert (certs_d / "ghcr.io" / "hosts.toml").read_text().endswith(
        '[host."https://registry.site.example"]\n  capabilities = ["pull", "resolve"]\n'
    )

    registry_tasks(tmp_path, certs_d, None)
    assert sorted(p.name for p in certs_d.iterdir()) == ["quay.io"]


@pytest.fixture
def fake_ctr(tmp_path: Path) -> Path:
    (tmp_path / "bin").mkdir()
    ctr = tmp_path / "bin" / "ctr"
    ctr.write_text(FAKE_CTR)
    ctr.chmod(0o755)
    (tmp_path / "images").write_text("")
    return tmp_path / "calls"


def prepull(tmp_path: Path, check: bool) -> dict[str, list[dict[str, Any]]]:
    return run_tasks(tmp_path, "inference_runtime", "prepull", {
        "inference_runtime_registry": "http://10.20.0.5:5000",
        "inference_runtime_image": "docker.io/vllm/vllm-openai",
        "inference_runtime_digest": REFERENCE.split("@")[1],
    }, check=check)  # fmt: skip


@pytest.mark.slow
def test_check_mode_reports_a_missing_image_as_a_change_and_pulls_nothing(tmp_path: Path, fake_ctr: Path) -> None:
    results = prepull(tmp_path, check=True)
    assert changed_tasks(results), results  # what `ecohash drift` lists for the node
    assert [call for call in fake_ctr.read_text().splitlines() if " pull " in call] == []


@pytest.mark.slow
def test_check_mode_reports_nothing_when_the_image_is_there(tmp_path: Path, fake_ctr: Path) -> None:
    (tmp_path / "images").write_text(f"docker.io/library/busybox:1\n{REFERENCE}\n")
    assert changed_tasks(prepull(tmp_path, check=True)) == []
    assert [call for call in fake_ctr.read_text().splitlines() if " pull " in call] == []


@pytest.mark.slow
def test_the_pull_goes_through_the_registrys_hosts_toml(tmp_path: Path, fake_ctr: Path) -> None:
    results = prepull(tmp_path, check=False)
    assert changed_tasks(results) != []
    pulls = [call for call in fake_ctr.read_text().splitlines() if " pull " in call]
    assert pulls == [
        "--namespace k8s.io images pull --hosts-dir /etc/containerd/certs.d "
        f"--platform linux/amd64 {REFERENCE}"
    ]
