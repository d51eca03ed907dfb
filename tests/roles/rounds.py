"""Faults injected on several lab hosts at once, and the bootstraps that meet them.

A bootstrap of the lab costs most of a minute however few hosts it is limited to (the
plays, the facts, some ninety tasks), so the role tests do not each break one node, run
a bootstrap, then run another to heal it. The faults are grouped instead:

- the repair round: faults a run must repair, on different hosts or in different roles
  of one host, all met by one run over the site;
- the failure round: faults that must fail a node, one host each, met by one run;
- one run then heals those hosts, so every later test finds the lab standard again;
- the site and its standard changed, then changed back (two hosts, three runs);
- one check-mode run over a converged node and a curtailed one.

Each test reads only its own host's and its own role's part of a shared run
(`host_results`, filtered by host and role), so one fault's repair cannot pass for
another's. The rounds leave every host as the first bootstrap did.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ecohash.lab import simtoolkit
from ecohash.lab.layout import inventory_file
from ecohash.lab.simhardware import with_fault
from ecohash.paths import state_dir
from ecohash.rollout.verify import Verification
from ecohash.standard import image_reference
from tests.labhosts import Lab
from tests.roles.bootstraps import (
    ECOHASH,
    SERVER,
    Bootstrapped,
    BootstrapRun,
    cluster_nodes,
    host_results,
    run_bootstrap,
    verify,
)
from tests.roles.registry import LAB_REGISTRY, lab_standard, site_without_registry

# The repair round's hosts. The apt and image faults share a host: different roles repair them.
APT_HOST = "c02-r01-n02"  # runc's hold released and pciutils removed
IMAGE_HOST = "c02-r01-n02"  # the pinned inference image deleted from containerd
TAMPERED_HOST = "c01-r01-n02"  # bytes appended to /usr/local/bin/k3s
MOVED_HOST = "c02-r01-n01"  # its rack renamed in the site file, stale labels on its Node
MOVED_TO_RACK = "r07"
KUBECONFIG_HOST = SERVER  # the site names its own kubeconfig; the fetched one removed

# The failure round's hosts, one fault each (a node fails at its first).
REMAP_HOST = "c01-r01-n02"  # a GPU with a row remap pending
ECC_HOST = "c02-r01-n02"  # a GPU with uncorrected ECC errors
FEWER_GPUS_HOST = "c02-r01-n01"  # a GPU fell off the bus
FAILING_HOSTS = [REMAP_HOST, FEWER_GPUS_HOST, ECC_HOST]

# Left alone by the failure round and the heal: an override that expires is watched there
# meanwhile, so that its wait for the host's 30-second timer costs no time of its own.
EXPIRING_HOST = SERVER
OVERRIDE_FILE = "/etc/ecohash/gpu-power-override.json"

# The hosts whose site and standard change and change back.
TOOLKIT_HOST = "c02-r01-n01"  # the SIMULATED container toolkit upgraded, then rolled back
REGISTRY_NODE = "c01-r01-n02"  # the site's registry removed, then named again
CHANGED_HOSTS = [REGISTRY_NODE, TOOLKIT_HOST]

# The check-mode run's hosts.
CONVERGED_HOST = "c02-r01-n01"
CURTAILED_HOST = "c01-r01-n02"

SIM_GPUS = "/etc/ecohash-sim/gpus.json"
GPU_LIMITS = "nvidia-smi --query-gpu=power.limit,persistence_mode --format=csv,noheader,nounits"
CERTS_D = "/etc/containerd/certs.d"


@dataclass
class RepairRound:
    """Faults a run must repair, then one bootstrap over the site: what it did, read at once."""

    image_drift: subprocess.CompletedProcess[str]  # `drift --limit IMAGE_HOST --json` before the run
    run: BootstrapRun
    moved_labels: dict[str, str]  # MOVED_HOST's Node labels after the run
    moved_verification: Verification  # provision's checks of MOVED_HOST against the edited site
    named_kubeconfig: Path  # where the edited site said its kubeconfig is
    named_kubeconfig_written: bool


@dataclass
class FailureRound:
    """Faults that must fail a node, one per host of FAILING_HOSTS, then one bootstrap of them."""

    run: BootstrapRun
    verdicts: dict[str, dict[str, Any]]  # REMAP_HOST's and ECC_HOST's verdict.json
    ecc_host_rejoined: bool  # whether a role wrote ECC_HOST's k3s configuration back


@dataclass
class ExpiredOverride:
    """A curtailment's override on EXPIRING_HOST that ended 5 s after it began, with nobody
    running anything there: only the host's timer (every 30 s) could remove it."""

    until: int  # the override's end, the host's epoch seconds
    limits_during: list[str]  # GPU_LIMITS once it was applied
    removed: bool  # whether the file was gone within 45 s of its end
    limits_after: list[str]
    journal: str  # ecohash-gpu-power.service's journal


@dataclass
class FaultRounds:
    """Both rounds, the run that healed their hosts afterwards, and the override that
    expired on EXPIRING_HOST meanwhile."""

    repair: RepairRound
    failure: FailureRound
    heal: BootstrapRun
    moved_rack_after_heal: str
    expired: ExpiredOverride


def fault_rounds(lab: Lab) -> FaultRounds:
    repair = repair_round(lab)
    until = int(lab.ssh(EXPIRING_HOST, "date +%s").stdout) + 5
    ends = time.monotonic() + 5
    try:
        lab.ssh(EXPIRING_HOST, f"ecohash-gpu-power curtail --cap 300 --until {until} --event lab-test-expiring")
        limits_during = lab.ssh(EXPIRING_HOST, GPU_LIMITS).stdout.splitlines()
        failure = failure_round(lab)
        # Both rounds' hosts back to the lab standard, and MOVED_HOST back in its rack.
        heal = run_bootstrap("--limit", ",".join(FAILING_HOSTS))
        assert heal.returncode == 0 and heal.summary["failed_hosts"] == [], heal.output
        moved_rack = cluster_nodes(lab)[MOVED_HOST]["metadata"]["labels"]["ecohash.io/rack"]
        removed = wait_until_gone(lab, EXPIRING_HOST, OVERRIDE_FILE, deadline=ends + 45)
        expired = ExpiredOverride(
            until, limits_during, removed, lab.ssh(EXPIRING_HOST, GPU_LIMITS).stdout.splitlines(),
            lab.ssh(EXPIRING_HOST, "journalctl --no-pager -q -u ecohash-gpu-power.service").stdout)
    finally:
        lab.ssh(EXPIRING_HOST, "ecohash-gpu-power release")
    return FaultRounds(repair, failure, heal, moved_rack, expired)


def wait_until_gone(lab: Lab, host: str, path: str, *, deadline: float) -> bool:
    """Whether `path` is gone from `host` by `deadline` (time.monotonic())."""
    while lab.ssh(host, f"test -e {path}", check=False).returncode == 0:
        if time.monotonic() >= deadline:
            return False
        time.sleep(2)
    return True


def repair_round(lab: Lab) -> RepairRound:
    reference = image_reference(lab_standard(lab), LAB_REGISTRY)
    lab.ssh(APT_HOST, "apt-mark unhold runc && apt-get remove -y -q pciutils")
    lab.ssh(IMAGE_HOST, f"ctr --namespace k8s.io images rm {reference}")
    lab.ssh(TAMPERED_HOST, "echo tampered >> /usr/local/bin/k3s")
    lab.ssh(SERVER, f"k3s kubectl label node {MOVED_HOST} ecohash.io/stale=yes example.com/theirs=kept")
    image_drift = subprocess.run([ECOHASH, "drift", "lab", "--limit", IMAGE_HOST, "--json"],
                                 capture_output=True, text=True, timeout=900, check=False)
    named = inventory_file().parent / "cluster.kubeconfig"
    (state_dir() / "secrets" / "lab" / "kubeconfig").unlink()
    with edited_site(named_kubeconfig=named.name, moved_rack=MOVED_TO_RACK):
        run = run_bootstrap()
        moved_labels = cluster_nodes(lab)[MOVED_HOST]["metadata"]["labels"]
        moved_verification = verify(lab, MOVED_HOST)
    return RepairRound(image_drift, run, moved_labels, moved_verification, named, named.exists())


def failure_round(lab: Lab) -> FailureRound:
    """On the site as it is; each host's SIMULATED hardware put back afterwards, whatever happens."""
    for name in FAILING_HOSTS:
        lab.ssh(name, f"cp {SIM_GPUS} /root/gpus.json")
    try:
        hardware = {name: json.loads(lab.ssh(name, f"cat {SIM_GPUS}").stdout) for name in FAILING_HOSTS}
        faulty = {
            REMAP_HOST: with_fault(hardware[REMAP_HOST], 1, "remapped_rows_pending", True),
            FEWER_GPUS_HOST: dict(hardware[FEWER_GPUS_HOST], gpus=hardware[FEWER_GPUS_HOST]["gpus"][:1], count=1),
            ECC_HOST: hardware[ECC_HOST],
        }
        faulty[ECC_HOST]["gpus"][1]["ecc_uncorrected_volatile"] = 3
        for name, content in faulty.items():
            lab.ssh(name, f"cat > {SIM_GPUS}", input_bytes=json.dumps(content).encode())
        lab.ssh(ECC_HOST, "rm /etc/rancher/k3s/config.yaml")  # would be rewritten if the node joined
        run = run_bootstrap("--limit", ",".join(FAILING_HOSTS))
        verdicts = {name: json.loads(lab.ssh(name, "cat /var/lib/ecohash/health/verdict.json").stdout)
                    for name in (REMAP_HOST, ECC_HOST)}
        rejoined = lab.ssh(ECC_HOST, "test -e /etc/rancher/k3s/config.yaml", check=False).returncode == 0
    finally:
        for name in FAILING_HOSTS:
            lab.ssh(name, f"cp /root/gpus.json {SIM_GPUS}")
    return FailureRound(run, verdicts, rejoined)


@contextmanager
def edited_yaml(path: Path, edit: Callable[[dict[str, Any]], None]) -> Iterator[None]:
    """`path`'s YAML document as `edit` changes it, for a while; then the file as it was."""
    original = path.read_text()
    document = yaml.safe_load(original)
    edit(document)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    try:
        yield
    finally:
        path.write_text(original)


def edited_site(*, named_kubeconfig: str, moved_rack: str) -> AbstractContextManager[None]:
    """The lab's site file naming its own kubeconfig and with MOVED_HOST's rack renamed
    (which moves its rack-mates too), for a while."""
    def edit(document: dict[str, Any]) -> None:
        document["spec"]["kubernetes"]["kubeconfig"] = named_kubeconfig
        container = next(c for c in document["spec"]["containers"] if c["name"] == MOVED_HOST.split("-")[0])
        container["racks"][0]["name"] = moved_rack

    return edited_yaml(inventory_file(), edit)


@dataclass
class ChangedAndBack:
    """The site without its registry and a standard with a later SIMULATED toolkit, then
    both as they were, then a run more: CHANGED_HOSTS' three runs."""

    changed: BootstrapRun
    toolkit_version_changed: str  # on TOOLKIT_HOST
    registry_dirs_changed: list[str]  # REGISTRY_NODE's certs.d entries
    back: BootstrapRun
    toolkit_version_back: str
    toolkit_held_back: bool
    registry_file_back: bool
    again: BootstrapRun


def changed_and_back(bootstrapped: Bootstrapped) -> ChangedAndBack:
    lab, limit = bootstrapped.lab, ",".join(CHANGED_HOSTS)
    toolkit, registry_node = bootstrapped.host(TOOLKIT_HOST), bootstrapped.host(REGISTRY_NODE)
    package = simtoolkit.PACKAGE_NAME
    with toolkit_in_standard(lab.paths.standard_file, simtoolkit.LATER_PACKAGE_VERSION), \
            site_without_registry():
        changed = run_bootstrap("--limit", limit)
        toolkit_changed = toolkit.package(package).version
        registry_dirs = [d for d in registry_node.check_output(f"ls -A {CERTS_D}").split() if d]
    # The lab's own standard again: the version before, which is lower than the node's.
    back = run_bootstrap("--limit", limit)
    toolkit_back = toolkit.package(package).version
    held = package in toolkit.check_output("apt-mark showhold").split()
    registry_back = registry_node.file(f"{CERTS_D}/{LAB_REGISTRY.split('://', 1)[1]}/hosts.toml").exists
    again = run_bootstrap("--limit", limit)
    return ChangedAndBack(changed, toolkit_changed, registry_dirs, back, toolkit_back, held, registry_back, again)


def toolkit_in_standard(standard_file: Path, version: str) -> AbstractContextManager[None]:
    """The lab's standard with another version of the SIMULATED container toolkit, for a while."""
    def edit(standard: dict[str, Any]) -> None:
        standard["nvidia_container_toolkit"]["version"] = version

    return edited_yaml(standard_file, edit)


@dataclass
class CheckRun:
    """`bootstrap --check` over CONVERGED_HOST and CURTAILED_HOST, the latter under a
    curtailment's override to 300 W."""

    run: BootstrapRun
    curtailment: dict[str, Any]  # `ecohash-gpu-power curtail`'s answer
    curtailed_limits: list[str]  # GPU_LIMITS on CURTAILED_HOST after the run


def check_run(bootstrapped: Bootstrapped) -> CheckRun:
    lab = bootstrapped.lab
    done = lab.ssh(CURTAILED_HOST, "ecohash-gpu-power curtail --cap 300 --until 0 --event lab-test-check")
    try:
        run = run_bootstrap("--check", "--limit", f"{CURTAILED_HOST},{CONVERGED_HOST}")
        limits = lab.ssh(CURTAILED_HOST, GPU_LIMITS).stdout.splitlines()
    finally:
        lab.ssh(CURTAILED_HOST, "ecohash-gpu-power release")
    return CheckRun(run, json.loads(done.stdout), limits)


def changed_tasks(run: BootstrapRun, host: str, role: str | None = None) -> list[str]:
    """The tasks (without their role's prefix) that changed `host` in `run`, of one role if given."""
    return sorted(
        str(result["task"]).split(" : ")[-1] for result in host_results(run)
        if result["host"] == host and result.get("res", {}).get("changed")
        and (role is None or result.get("role") == role)
    )
