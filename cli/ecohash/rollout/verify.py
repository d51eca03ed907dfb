"""Verification from outside Ansible: testinfra checks that a node is what its standard says.

node_health (inside the Ansible run) decides acceptance from the GPUs' point of view;
these checks look again, over a separate SSH session, at what the roles were meant to
leave behind: the pinned packages held, the units enabled, the k3s binary's sha256, the
Node's ecohash labels and taints, the image digest, every GPU at the budget's cap. A role
that reports success without doing its job fails here. The checks only read; they change nothing on the node.

During a curtailment event a GPU node runs at the event's cap instead of its planned one.
That is accepted on positive evidence only: the controller's event state says the node
enforces the event's cap (VerifyTarget.curtailment), and the node's own override, as its
ecohash-gpu-power reads it, names the same event and cap; anything else expects the plan.
"""

from __future__ import annotations

import json
import shlex
import tempfile
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecohash.ansible.inventory import k8s_labels
from ecohash.grid.events import ENFORCED, active_event
from ecohash.grid.nodes import SCRIPT, NodeCommandFailed, parse_read_back
from ecohash.inventory.labels import LABEL_PREFIX, TAINT_KEYS
from ecohash.ssh.host_key_checking import HOST_KEY_CHECKING_ARGS

VERDICT_FILE = "/var/lib/ecohash/health/verdict.json"
# The kubelet's own credentials: enough to read its own Node, on agents and servers alike.
KUBELET_KUBECONFIG = "/var/lib/rancher/k3s/agent/kubelet.kubeconfig"
RUNTIME_CONFIG = "/etc/ecohash/inference-runtime.json"
GPU_FIELDS = ("name", "driver_version", "power.limit", "persistence_mode", "power.draw")


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "detail": self.detail}


@dataclass
class Verification:
    node: str
    checks: list[Check] = field(default_factory=list)
    gpu_draw_w: float | None = None
    error: str | None = None  # the node could not be checked at all (unreachable, ...)

    @property
    def passed(self) -> bool:
        return self.error is None and all(check.passed for check in self.checks)

    @property
    def reason(self) -> str | None:
        if self.error:
            return self.error
        failed = [f"{c.name} ({c.detail})" for c in self.checks if not c.passed]
        return "verification failed: " + "; ".join(failed) if failed else None


@dataclass(frozen=True)
class Curtailment:
    """A curtailment event in force on a node, as the controller's event state records it."""

    event: str
    cap_w: int


@dataclass(frozen=True)
class VerifyTarget:
    """A node as the checks need it: how to reach it, and what it should be."""

    name: str
    address: str
    port: int
    user: str
    ssh_config: Path | None
    host_vars: Mapping[str, Any]
    standard: Mapping[str, Any]
    curtailment: Curtailment | None = None


def event_caps(site_name: str) -> dict[str, Curtailment]:
    """The nodes an active curtailment event of the site holds at its cap, from the event state."""
    event = active_event(site_name)
    if event is None:
        return {}
    return {name: Curtailment(event.id, node.cap_w) for name, node in event.nodes.items()
            if node.status == ENFORCED}


def node_checks(target: VerifyTarget, host: Any) -> Verification:
    """Every check that applies to the node, in order; reads only.

    `host` is a testinfra Host (anything with run(command) and system_info). testinfra
    raises RuntimeError when SSH itself fails, which ends the node's checks.
    """
    result = Verification(target.name)
    gpus = int(target.host_vars.get("ecohash_gpu_count") or 0)
    standard = target.standard
    platform = _platform(host)
    result.checks.extend(_package_checks(host, _pinned_packages(standard, platform, gpus > 0)))
    result.checks.append(_unit_check(host, "containerd.service", running=True))
    if gpus:
        checks, draw = _gpu_checks(host, target.host_vars, standard, _cap_in_force(host, target))
        result.checks.extend(checks)
        result.gpu_draw_w = draw
        result.checks.append(_unit_check(host, "ecohash-gpu-power.service", running=False))
        result.checks.append(_verdict_check(host))
        result.checks.append(_runtime_config_check(host, standard["inference_runtime"]["digest"]))
    role = target.host_vars.get("ecohash_k8s_role")
    if role:
        result.checks.append(_sha256_check(host, "/usr/local/bin/k3s", standard["k3s"]["sha256"]))
        unit = "k3s.service" if role == "server" else "k3s-agent.service"
        result.checks.append(_unit_check(host, unit, running=False))
        result.checks.append(_node_labels_check(host, target))
    return result


def _platform(host: Any) -> str:
    info = host.system_info
    release = info.release or ""
    if info.distribution == "debian":
        return f"debian{release.split('.')[0]}"
    return f"{info.distribution}{release.replace('.', '')}"


def _pinned_packages(standard: Mapping[str, Any], platform: str, gpu: bool) -> dict[str, str]:
    """Package -> the exact version the standard pins, for the node's kind and platform."""
    packages = {name: pinned["version"] for name, pinned in standard["containerd"].get(platform, {}).items()}
    if gpu:
        driver = standard["nvidia_driver"]
        packages.update(dict.fromkeys(driver["packages"].get(platform, []), driver["apt_version"]))
        toolkit = standard["nvidia_container_toolkit"]
        packages.update(dict.fromkeys(toolkit["packages"], toolkit["version"]))
    return packages


def _package_checks(host: Any, packages: Mapping[str, str]) -> list[Check]:
    if not packages:
        return []
    names = " ".join(shlex.quote(name) for name in sorted(packages))
    out = host.run(f"dpkg-query -W -f='${{Package}} ${{Version}} ${{Status}}\\n' {names}").stdout
    found = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3:
            found[parts[0]] = (parts[1], parts[2])  # version, selection (install/hold)
    held = set(host.run("apt-mark showhold").stdout.split())
    checks = []
    for name in sorted(packages):
        version, _ = found.get(name, ("absent", ""))
        ok = version == packages[name] and name in held
        detail = f"{version}{', held' if name in held else ', NOT held'}"
        checks.append(Check(f"{name} {packages[name]} installed and held", ok, detail))
    return checks


def _unit_check(host: Any, unit: str, running: bool) -> Check:
    enabled = host.run(f"systemctl is-enabled {unit}").stdout.strip()
    active = host.run(f"systemctl is-active {unit}").stdout.strip()
    ok = enabled == "enabled" and (active == "active" or not running)
    what = "enabled and running" if running else "enabled"
    return Check(f"{unit} {what}", ok, f"{enabled}, {active}")


def _cap_in_force(host: Any, target: VerifyTarget) -> tuple[int | None, str]:
    """The cap the node's GPUs should have, and why: the plan's, or an event's on both sides' word."""
    planned = target.host_vars.get("ecohash_gpu_cap_w")
    curtailment = target.curtailment
    if curtailment is None:
        return planned, ""
    answer = host.run(f"{SCRIPT} read")
    try:
        override = parse_read_back(target.name, answer.stdout, 0.0).override if answer.rc == 0 else None
    except NodeCommandFailed:
        override = None
    if override and override.get("event") == curtailment.event and override.get("cap_w") == curtailment.cap_w:
        return curtailment.cap_w, f" (curtailment event {curtailment.event}; planned {planned} W)"
    on_node = (f"event {override.get('event')} at {override.get('cap_w')} W" if override
               else "no override in force")
    return planned, f" (event {curtailment.event} not in force on the node: {on_node})"


def _gpu_checks(host: Any, host_vars: Mapping[str, Any], standard: Mapping[str, Any],
                in_force: tuple[int | None, str]) -> tuple[list[Check], float | None]:
    command = f"nvidia-smi --query-gpu={','.join(GPU_FIELDS)} --format=csv,noheader,nounits"
    answer = host.run(command)
    if answer.rc != 0:
        return [Check("nvidia-smi answers", False, (answer.stderr or answer.stdout).strip()[:200])], None
    rows = [[cell.strip() for cell in line.split(",")] for line in answer.stdout.splitlines() if line.strip()]
    gpus = int(host_vars["ecohash_gpu_count"])
    name = host_vars.get("ecohash_gpu_nvidia_smi_name")
    driver = standard["nvidia_driver"]["version"]
    cap, why = in_force
    checks = [
        Check(f"{gpus} GPUs", len(rows) == gpus, str(len(rows))),
        Check(f"every GPU is {name}", bool(rows) and all(r[0] == name for r in rows),
              ", ".join(sorted({r[0] for r in rows}))),
        Check(f"driver {driver}", bool(rows) and all(r[1] == driver for r in rows),
              ", ".join(sorted({r[1] for r in rows}))),
        Check(f"power limit {cap} W on every GPU{why}",
              bool(rows) and all(_watts(r[2]) == cap for r in rows), ", ".join(r[2] for r in rows)),
        Check("persistence mode on every GPU", bool(rows) and all(r[3] == "Enabled" for r in rows),
              ", ".join(sorted({r[3] for r in rows}))),
    ]
    draws = [_watts_float(r[4]) for r in rows]
    draw = sum(d for d in draws if d is not None) if rows and None not in draws else None
    return checks, draw


def _watts(text: str) -> int | None:
    value = _watts_float(text)
    return None if value is None else round(value)


def _watts_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None  # "[N/A]" on GPUs that do not report it


def _verdict_check(host: Any) -> Check:
    content = host.run(f"cat {VERDICT_FILE}")
    try:
        verdict = json.loads(content.stdout)
    except ValueError:
        return Check("node_health verdict passed", False, f"{VERDICT_FILE} missing or not JSON")
    failed = ", ".join(verdict.get("failed_checks", [])) or "-"
    return Check("node_health verdict passed", verdict.get("passed") is True, f"failed checks: {failed}")


def _runtime_config_check(host: Any, digest: str) -> Check:
    content = host.run(f"cat {RUNTIME_CONFIG}")
    try:
        image = json.loads(content.stdout).get("image", "")
    except ValueError:
        image = ""
    return Check("inference image pinned by digest", image.endswith("@" + digest), image or "missing")


def _sha256_check(host: Any, path: str, sha256: str) -> Check:
    out = host.run(f"sha256sum {shlex.quote(path)}").stdout.split()
    found = out[0] if out else "missing"
    return Check(f"{path} sha256 {sha256[:12]}", found == sha256, found[:12])


def _host_url(address: str) -> str:
    """testinfra's ssh URL of a host: the address alone, percent-encoded, an IPv6 one in brackets."""
    quoted = urllib.parse.quote(address, safe=":")
    return f"ssh://[{quoted}]" if ":" in address else f"ssh://{quoted}"


def _node_labels_check(host: Any, target: VerifyTarget) -> Check:
    """The Node's ecohash labels and taints are exactly the inventory's (ecohash.inventory.labels)."""
    name = "Node labels and taints as the inventory gives them"
    answer = host.run(f"/usr/local/bin/k3s kubectl --kubeconfig {KUBELET_KUBECONFIG} "
                      f"get node {shlex.quote(target.name)} -o json")
    try:
        node = json.loads(answer.stdout)
    except ValueError:
        return Check(name, False, (answer.stderr or answer.stdout).strip()[:200] or "no answer")
    found = node.get("metadata", {}).get("labels") or {}
    labels = {k: v for k, v in found.items() if k.startswith(LABEL_PREFIX)}
    taints = sorted(_taint(t) for t in node.get("spec", {}).get("taints") or [] if t.get("key") in TAINT_KEYS)
    wanted_labels = k8s_labels(target.host_vars)
    wanted_taints = sorted(target.host_vars.get("ecohash_k8s_taints") or [])
    differences = [f"{k}={labels.get(k, '(none)')}, not {v}" for k, v in sorted(wanted_labels.items())
                   if labels.get(k) != v]
    differences += [f"{k}={v} not in the inventory" for k, v in sorted(labels.items())
                    if k not in wanted_labels]
    if taints != wanted_taints:
        differences.append(f"taints {', '.join(taints) or '(none)'}, "
                           f"not {', '.join(wanted_taints) or '(none)'}")
    return Check(name, not differences, "; ".join(differences) or "as the inventory")


def _taint(taint: Mapping[str, str]) -> str:
    """A taint as the inventory writes it (ecohash.inventory.labels.k3s_taint): key=value:Effect."""
    value = taint.get("value")
    return f"{taint['key']}{'=' + value if value else ''}:{taint['effect']}"


def verify_nodes(targets: Iterable[VerifyTarget], workers: int = 32,
                 on_result: Callable[[Verification], None] | None = None) -> dict[str, Verification]:
    """Check every target in parallel; a node that cannot be reached gets an error, not a raise."""
    # Lazy: testinfra loads pytest's machinery, which only a provision's verification needs.
    import testinfra

    targets = list(targets)
    results: dict[str, Verification] = {}
    if not targets:
        return results
    # Short, private control sockets: one SSH master per node for all of its checks.
    with tempfile.TemporaryDirectory(prefix="ecohash-verify-") as sockets:
        def verify(target: VerifyTarget) -> Verification:
            host = testinfra.get_host(
                _host_url(target.address), ssh_config=str(target.ssh_config) if target.ssh_config else None,
                sudo=target.user != "root", controlpersist=5,
                # testinfra %-formats the ssh command line: %% reaches ssh as %.
                controlpath=f"{sockets}/%%C",
                # User and port as ssh options, quoted for the shell testinfra runs ssh with:
                # in the host URL, a user name could bring query settings of its own.
                ssh_extra_args=shlex.join([
                    "-o", f"User={target.user}", "-o", f"Port={target.port}", "-o", "BatchMode=yes",
                    *HOST_KEY_CHECKING_ARGS,
                ]),
            )
            try:
                return node_checks(target, host)
            except RuntimeError as lost:  # testinfra: ssh exited 255, the connection failed
                message = str(getattr(lost.args[0], "stderr", lost)).strip().splitlines()
                return Verification(target.name, error="unreachable during verification: "
                                    + (message[-1] if message else "ssh failed"))
            except Exception as error:  # noqa: BLE001 - one node's odd answer must not end the rollout
                return Verification(target.name, error=f"verification could not run: {error!r}"[:300])

        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(targets)))) as pool:
            futures = [pool.submit(verify, target) for target in targets]
            for future in as_completed(futures):
                result = future.result()
                results[result.node] = result
                if on_result is not None:
                    on_result(result)
    return results
