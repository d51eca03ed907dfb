"""Verification checks against a node's answers: each check passes only on the right answer.

The same checks run against real lab hosts in tests/rollout/test_provision_lab.py; here a
stand-in host answers, so each wrong answer can be tried alone.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ecohash.ansible.inventory import k8s_labels, load_inventory
from ecohash.rollout.verify import Curtailment, Verification, VerifyTarget, node_checks, verify_nodes
from tests.rollout.sshserver import SshServer, new_ed25519_key
from tests.rollout.test_fingerprint import CPU_NODE, GPU_NODE, SITE


@dataclass
class Answer:
    rc: int
    stdout: str
    stderr: str = ""


@dataclass
class SystemInfo:
    distribution: str = "debian"
    release: str = "12.8"


class StandInHost:
    """Answers the commands the checks run the way a standard node does, unless told otherwise."""

    def __init__(self, target: VerifyTarget, **overrides: str):
        standard, host_vars = target.standard, target.host_vars
        packages = {name: pinned["version"] for name, pinned in standard["containerd"]["debian12"].items()}
        if host_vars["ecohash_gpu_count"]:
            driver, toolkit = standard["nvidia_driver"], standard["nvidia_container_toolkit"]
            packages.update(dict.fromkeys(driver["packages"]["debian12"], driver["apt_version"]))
            packages.update(dict.fromkeys(toolkit["packages"], toolkit["version"]))
        gpu_row = (f"{host_vars['ecohash_gpu_nvidia_smi_name']}, {standard['nvidia_driver']['version']}, "
                   f"{host_vars['ecohash_gpu_cap_w']}.00, Enabled, 101.50")
        self.answers = {
            "dpkg-query": "".join(f"{n} {v} install ok installed\n" for n, v in packages.items()),
            "apt-mark showhold": "\n".join(packages),
            "systemctl is-enabled": "enabled",
            "systemctl is-active": "active",
            "nvidia-smi": "\n".join([gpu_row] * host_vars["ecohash_gpu_count"]),
            "cat /var/lib/ecohash/health/verdict.json": json.dumps({"passed": True, "failed_checks": []}),
            "cat /etc/ecohash/inference-runtime.json": json.dumps(
                {"image": f"registry/vllm@{standard['inference_runtime']['digest']}"}),
            "sha256sum": f"{standard['k3s']['sha256']}  /usr/local/bin/k3s",
            "/usr/local/bin/k3s kubectl": json.dumps(registered_node(target)),
            **overrides,
        }
        self.system_info = SystemInfo()
        self.commands: list[str] = []

    def run(self, command: str) -> Answer:
        self.commands.append(command)
        for prefix, answer in self.answers.items():
            if command.startswith(prefix):
                return Answer(0, answer)
        raise AssertionError(f"unexpected command {command!r}")


def registered_node(target: VerifyTarget) -> dict[str, Any]:
    """The Node as the API server returns it: the inventory's labels and taints, and k3s's own."""
    taints = []
    for taint in target.host_vars.get("ecohash_k8s_taints") or []:
        spec, effect = taint.rsplit(":", 1)
        key, value = spec.split("=", 1)
        taints.append({"key": key, "value": value, "effect": effect})
    labels = {"kubernetes.io/hostname": target.name, **k8s_labels(target.host_vars)}
    return {"kind": "Node", "metadata": {"name": target.name, "labels": labels}, "spec": {"taints": taints}}


def target(node: str) -> VerifyTarget:
    inventory = load_inventory(SITE)
    return VerifyTarget(node, "10.0.0.1", 22, "root", None, inventory.host_vars(node),
                        inventory.all_vars["ecohash_standard"])


def failed(result: Any) -> list[str]:
    return [check.name for check in result.checks if not check.passed]


def test_a_standard_gpu_node_passes_every_check_and_reports_its_draw() -> None:
    gpu = target(GPU_NODE)
    result = node_checks(gpu, StandInHost(gpu))
    assert result.passed, result.reason
    assert len(result.checks) >= 12
    assert result.gpu_draw_w == 101.5 * gpu.host_vars["ecohash_gpu_count"]


def test_a_cpu_only_server_gets_no_gpu_checks() -> None:
    cpu = target(CPU_NODE)
    host = StandInHost(cpu)
    result = node_checks(cpu, host)
    assert result.passed, result.reason
    assert not any(command.startswith("nvidia-smi") for command in host.commands)
    assert "k3s.service enabled" in [check.name for check in result.checks]


def test_a_gpu_at_another_power_limit_fails_the_cap_check() -> None:
    gpu = target(GPU_NODE)
    cap = gpu.host_vars["ecohash_gpu_cap_w"]
    host = StandInHost(gpu)
    rows = host.answers["nvidia-smi"].splitlines()
    rows[0] = rows[0].replace(f"{cap}.00", "300.00")
    host.answers["nvidia-smi"] = "\n".join(rows)
    result = node_checks(gpu, host)
    assert failed(result) == [f"power limit {cap} W on every GPU"]
    assert result.reason is not None and "300.00" in result.reason


def curtailed_host(gpu: VerifyTarget, event_on_node: str | None, cap_on_node: int = 300) -> StandInHost:
    """A node whose GPUs run at 300 W, with the override its ecohash-gpu-power reads (or none)."""
    cap = gpu.host_vars["ecohash_gpu_cap_w"]
    host = StandInHost(gpu)
    host.answers["nvidia-smi"] = host.answers["nvidia-smi"].replace(f"{cap}.00", "300.00")
    override = {"event": event_on_node, "cap_w": cap_on_node, "until": 0, "set_at": 1} if event_on_node else None
    host.answers["/usr/local/sbin/ecohash-gpu-power read"] = json.dumps(
        {"node_time": 1.0, "planned_cap_w": cap, "override": override, "gpus": []})
    return host


def test_an_event_s_cap_is_accepted_when_the_controller_and_the_node_both_say_so() -> None:
    gpu = dataclasses.replace(target(GPU_NODE), curtailment=Curtailment("20261202-064120-465e17", 300))
    cap = gpu.host_vars["ecohash_gpu_cap_w"]
    result = node_checks(gpu, curtailed_host(gpu, "20261202-064120-465e17"))
    assert result.passed, result.reason
    assert (f"power limit 300 W on every GPU (curtailment event 20261202-064120-465e17; planned {cap} W)"
            in [check.name for check in result.checks])


@pytest.mark.parametrize(("controller", "node", "cap_on_node", "why"), [
    (None, "20261202-064120-465e17", 300, ""),
    ("20261202-064120-465e17", None, 300, " (event 20261202-064120-465e17 not in force on the node: "
                                          "no override in force)"),
    ("20261202-064120-465e17", "20261201-000000-000000", 300, " (event 20261202-064120-465e17 not in force "
                                                              "on the node: event 20261201-000000-000000 at 300 W)"),
    ("20261202-064120-465e17", "20261202-064120-465e17", 250, " (event 20261202-064120-465e17 not in force "
                                                              "on the node: event 20261202-064120-465e17 at 250 W)"),
], ids=["no event on the controller", "no override on the node", "another event", "another cap"])
def test_without_both_sides_agreeing_the_plan_s_cap_is_expected(controller, node, cap_on_node, why) -> None:
    gpu = dataclasses.replace(target(GPU_NODE),
                              curtailment=Curtailment(controller, 300) if controller else None)
    cap = gpu.host_vars["ecohash_gpu_cap_w"]
    result = node_checks(gpu, curtailed_host(gpu, node, cap_on_node))
    assert failed(result) == [f"power limit {cap} W on every GPU{why}"]


def test_an_unheld_package_an_old_binary_and_a_failed_verdict_each_fail() -> None:
    gpu = target(GPU_NODE)
    host = StandInHost(gpu)
    host.answers["apt-mark showhold"] = "\n".join(host.answers["apt-mark showhold"].split("\n")[1:])
    host.answers["sha256sum"] = "0" * 64 + "  /usr/local/bin/k3s"
    host.answers["cat /var/lib/ecohash/health/verdict.json"] = json.dumps(
        {"passed": False, "failed_checks": ["ecc"]})
    result = node_checks(gpu, host)
    assert len(failed(result)) == 3
    assert "node_health verdict passed" in failed(result)
    assert any("installed and held" in name for name in failed(result))
    assert any(name.startswith("/usr/local/bin/k3s sha256") for name in failed(result))


# Verification's own SSH session, with OpenSSH's ssh (as testinfra runs it) against a test
# server that takes no key of this controller's: its refusal means the host key was accepted.
needs_ssh = pytest.mark.skipif(shutil.which("ssh") is None, reason="needs OpenSSH's ssh")


def reached(tmp_path: Path, user: str, config_text: str) -> tuple[Verification, bool]:
    """Verify one node behind the test server; and whether a ProxyCommand touched `pwned`."""
    config = tmp_path / "ssh_config"
    config.write_text(config_text)
    with SshServer([new_ed25519_key()], new_ed25519_key(), {}, users=(user,)) as server:
        node = dataclasses.replace(target(CPU_NODE), address="127.0.0.1", port=server.port, user=user,
                                   ssh_config=config)
        result = verify_nodes([node])[CPU_NODE]
    return result, (tmp_path / "pwned").exists()


@needs_ssh
def test_verification_checks_host_keys_whatever_the_ssh_config_says(tmp_path: Path) -> None:
    result, _ = reached(tmp_path, "root", "Host *\n    StrictHostKeyChecking no\n"
                        "    UserKnownHostsFile /dev/null\n    GlobalKnownHostsFile /dev/null\n")

    assert result.error == "unreachable during verification: Host key verification failed."


@needs_ssh
def test_a_user_name_never_chooses_verification_s_ssh_settings(tmp_path: Path) -> None:
    # testinfra reads settings from its host URL's query: a user name that got past the site
    # model must not name another ssh_config there, here one with a ProxyCommand.
    (tmp_path / "evil").write_text(f"Host *\n    ProxyCommand touch {tmp_path / 'pwned'}\n")

    result, pwned = reached(tmp_path, f"deploy?ssh_config={tmp_path / 'evil'}#",
                            f"Host *\n    UserKnownHostsFile {tmp_path / 'known_hosts'}\n")

    assert not pwned
    assert result.error == "unreachable during verification: Host key verification failed."


def test_a_node_whose_labels_are_not_the_inventorys_fails() -> None:
    gpu = target(GPU_NODE)
    node = registered_node(gpu)
    node["metadata"]["labels"]["ecohash.io/container"] = "c09"  # still where it was registered
    node["metadata"]["labels"]["ecohash.io/stale"] = "yes"
    node["metadata"]["labels"]["example.com/theirs"] = "kept"  # not ecohash's: ignored
    node["spec"]["taints"] = []
    host = StandInHost(gpu, **{"/usr/local/bin/k3s kubectl": json.dumps(node)})
    result = node_checks(gpu, host)
    assert failed(result) == ["Node labels and taints as the inventory gives them"]
    container = k8s_labels(gpu.host_vars)["ecohash.io/container"]
    assert result.reason == (
        "verification failed: Node labels and taints as the inventory gives them "
        f"(ecohash.io/container=c09, not {container}; ecohash.io/stale=yes not in the inventory; "
        "taints (none), not nvidia.com/gpu=present:PreferNoSchedule)")
    assert f"get node {GPU_NODE} -o json" in host.commands[-1]
