"""Runs of `ecohash bootstrap lab` for the role tests, and what they left behind.

The role tests' lab is bootstrapped from fresh by the real CLI, twice, then once more by
the ecohash.site collection as AWX would run it (tests/roles/conftest.py). The third run is
`ansible-playbook ecohash.site.bootstrap` from the collection built from this checkout and
installed alone, its inventory an AWX-style source file naming the lab's site file, limited
to one converged node (INSTALLED_RUN_HOST: every role's tasks run there, and a run over
the site would cost a minute more), where it must change nothing. Everything runs for real except what needs
hardware: the driver, the container toolkit and k3s are the lab's SIMULATED stand-ins from
its signed mirror, installed through the production tasks.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import testinfra

from ecohash.ansible.inventory import load_inventory
from ecohash.ansible.runner import fact_cache_environment
from ecohash.lab.layout import inventory_file
from ecohash.paths import facts_dir, resolve_site
from ecohash.rollout.verify import Verification, VerifyTarget, verify_nodes
from tests.collection.build import FQCN, REPO, build_collection, install_collection, installed_environment
from tests.labhosts import ECOHASH, Lab

LAB_HOSTS = ["c01-r01-n01", "c01-r01-n02", "c02-r01-n01", "c02-r01-n02"]
H100_HOSTS = ["c01-r01-n01", "c01-r01-n02"]
SERVER = "c01-r01-n01"
INSTALLED_RUN_HOST = "c02-r01-n02"  # an agent: no server runs alone first


@dataclass
class BootstrapRun:
    returncode: int
    output: str
    directory: Path
    summary: dict[str, Any]


def run_bootstrap(*arguments: str) -> BootstrapRun:
    result = subprocess.run(
        [ECOHASH, "bootstrap", "lab", *arguments],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    marker = "run artifacts: "
    lines = [line for line in output.splitlines() if line.startswith(marker)]
    assert lines, f"no run directory in the output:\n{output}"
    directory = Path(lines[-1][len(marker):].strip())
    summary = json.loads((directory / "summary.json").read_text())
    return BootstrapRun(result.returncode, output, directory, summary)


def host_results(run: BootstrapRun) -> Iterator[dict]:
    """event_data of every task result a host reported in the run (ansible-runner's events)."""
    for path in sorted(run.directory.glob("artifacts/*/job_events/*.json")):
        event = json.loads(path.read_text())
        if event.get("event") in ("runner_on_ok", "runner_on_failed", "runner_item_on_ok"):
            yield event["event_data"]


@dataclass
class InstalledRun:
    """ansible-playbook's run of the installed collection's bootstrap playbook."""

    returncode: int
    output: str  # at -vv: every task's path, so where the roles came from shows
    collections: Path


def run_installed_bootstrap(directory: Path) -> InstalledRun:
    collections = directory / "collections"
    install_collection(build_collection(directory), collections)
    source = directory / "lab.ecohash.yml"
    source.write_text(f"plugin: {FQCN}.ecohash_site\nsite_file: {resolve_site('lab').resolve()}\n")
    environment = {
        **installed_environment(collections),
        # ecohash's Ansible settings (forks, pipelining, host keys...), with the installed
        # copy as the only collections path; facts from the site's cache, as `ecohash
        # bootstrap` keeps them, so this run pays for no gathering.
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        **fact_cache_environment(facts_dir("lab")),
    }
    result = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-vv", "-i", str(source), f"{FQCN}.bootstrap",
         "--limit", INSTALLED_RUN_HOST],
        capture_output=True, text=True, timeout=900, check=False, cwd=directory, env=environment,
    )  # fmt: skip
    return InstalledRun(result.returncode, result.stdout + result.stderr, collections)


@dataclass
class Bootstrapped:
    lab: Lab
    first: BootstrapRun
    second: BootstrapRun
    installed: InstalledRun

    def host(self, name: str) -> testinfra.host.Host:
        return testinfra.get_host(f"ssh://{name}", ssh_config=str(self.lab.ssh_config))


def cluster_nodes(lab: Lab) -> dict[str, dict]:
    """The Node objects, as the first server's cluster-admin kubeconfig reads them."""
    out = lab.ssh(SERVER, "k3s kubectl get nodes -o json").stdout
    return {node["metadata"]["name"]: node for node in json.loads(out)["items"]}


def verify(lab: Lab, name: str) -> Verification:
    """provision's acceptance checks of one node, against the site file as it is now."""
    inventory = load_inventory(inventory_file())
    host_vars = inventory.host_vars(name)
    return verify_nodes([VerifyTarget(
        name, host_vars["ansible_host"], 22, "root", lab.ssh_config, host_vars,
        inventory.all_vars["ecohash_standard"])])[name]
