"""Site-local execution on the lab: `ecohash lab up --executor`, then provision and drift
through the executor, through the real CLI.

One lab for the module: the lab's hosts and one more, the executor, which `lab up`
installs from the mirror with playbooks/executor.yml. The role tests, which run first,
start their lab with it, so a forced provision of their converged hosts is the module's
first (a convergence from fresh takes minutes and the role tests have shown it). The executor
role must change nothing on a second run or in check mode. A provision and a drift run
their Ansible there: the controller starts no ansible-playbook, and the nodes see SSH
sessions from the executor's address. An executor killed mid-wave fails the run with a
reason naming it, and a re-run resumes. Nothing secret is left on the executor. Last, a
plain `lab up` takes the executor away with everything else of the old lab.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from ecohash.ansible import remote
from ecohash.ansible.inventory import inventory_for
from ecohash.ansible.remote import Executor, NodeAccess
from ecohash.ansible.runner import PlaybookRun, run_playbook
from ecohash.bundle import wheels
from ecohash.inventory.loader import load_site
from ecohash.inventory.model import DEFAULT_EXECUTOR_PATH
from ecohash.lab import network, state
from ecohash.lab.layout import EXECUTOR_ADDRESS, EXECUTOR_NAME, inventory_file
from ecohash.paths import state_dir
from tests.ansible.test_artifacts import member, stream, symlink
from tests.labhosts import Lab
from tests.roles.bootstraps import ECOHASH, LAB_HOSTS
from tests.rollout.test_gitops_lab import drift_report, edited_site, nodes_by_status
from tests.rollout.test_provision_lab import Provision, provision, statuses

pytestmark = pytest.mark.lab

EXECUTOR_BIN = Path(DEFAULT_EXECUTOR_PATH)  # the lab's site names no path
MANAGED_FILE = "/etc/apt/apt.conf.d/20auto-upgrades"  # the base role's; any node's


def descendants(root: int) -> list[list[str]]:
    """The command lines of every process under `root`, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, pending = [], list(children.get(root, []))
    while pending:
        pid = pending.pop()
        pending += children.get(pid, [])
        try:
            argv = (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        found.append([part.decode(errors="replace") for part in argv if part])
    return found


@dataclass
class ControllerWatch:
    """Every program the controller ran under one CLI command, sampled twice a second."""

    programs: set[str] = field(default_factory=set)
    stop: threading.Event = field(default_factory=threading.Event)

    def follow(self, pid: int) -> None:
        while not self.stop.is_set():
            for argv in descendants(pid):
                # Python entry points run as `python .../ansible-playbook`: name each by its script.
                self.programs.update(Path(part).name for part in argv[:2])
            time.sleep(0.5)


@pytest.fixture(scope="module")
def executor_lab(lab: Lab) -> Iterator[Lab]:
    # The executor installed from the mirror: on the role tests' bootstrapped hosts where
    # they ran first (tests/roles/conftest.py), on fresh ones otherwise.
    lab.with_executor()
    yield lab


def watched(*arguments: str) -> tuple[subprocess.CompletedProcess[str], ControllerWatch]:
    watch = ControllerWatch()
    process = subprocess.Popen([ECOHASH, *arguments], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    follower = threading.Thread(target=watch.follow, args=(process.pid,), daemon=True)
    follower.start()
    try:
        stdout, stderr = process.communicate(timeout=900)
    finally:
        watch.stop.set()
        follower.join()
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr), watch


@dataclass
class Provisioned:
    lab: Lab
    first: subprocess.CompletedProcess[str]
    watch: ControllerWatch


@pytest.fixture(scope="module")
def provisioned(executor_lab: Lab) -> Provisioned:
    # Forced: nodes a bootstrap left converged are recorded current, and every node must
    # run its play through the executor here.
    result, watch = watched("provision", "lab", "--json", "--force")
    return Provisioned(executor_lab, result, watch)


def sshd_sources(lab: Lab, node: str) -> set[str]:
    """The addresses SSH sessions to `node` came from, as its sshd logged them."""
    journal = lab.ssh(node, "journalctl -q --no-pager -u ssh.service | grep 'Accepted publickey'",
                      check=False).stdout
    return {line.split(" from ")[1].split()[0] for line in journal.splitlines() if " from " in line}


def executor_pins() -> set[str]:
    pins, _ = wheels.read_lock(Path(__file__).resolve().parents[2] / wheels.LOCK_FILE_NAME)
    return {pin.text.split()[0].lower() for pin in wheels.executor_pins(pins)}


def test_lab_up_executor_adds_a_host_that_is_no_node_of_the_site(executor_lab: Lab) -> None:
    status = executor_lab.status()
    assert [host.name for host in status.hosts] == LAB_HOSTS
    assert status.executor is not None
    assert (status.executor.name, status.executor.address, status.executor.state) == \
        (EXECUTOR_NAME, str(EXECUTOR_ADDRESS), "up")
    site = yaml.safe_load(inventory_file().read_text())
    assert site["spec"]["provisioning"]["executor"] == {"host": str(EXECUTOR_ADDRESS)}
    assert [node.name for node in load_site(inventory_file()).nodes] == LAB_HOSTS
    # Its host key is known like a node's, under its name and address; ssh checks it.
    known = executor_lab.paths.known_hosts.read_text().splitlines()
    assert [line.split()[0] for line in known if EXECUTOR_NAME in line] == [f"{EXECUTOR_NAME},{EXECUTOR_ADDRESS}"]
    assert executor_lab.ssh(EXECUTOR_NAME, "hostname").stdout.strip() == EXECUTOR_NAME
    listing = subprocess.run([ECOHASH, "lab", "status"], capture_output=True, text=True, check=True).stdout
    assert f"{EXECUTOR_NAME}  {EXECUTOR_ADDRESS}" in listing and "(the site's executor)" in listing


def test_the_executor_holds_the_locks_pins_installed_from_the_mirror_alone(executor_lab: Lab) -> None:
    freeze = executor_lab.ssh(EXECUTOR_NAME, f"{EXECUTOR_BIN}/python -m pip list --format=freeze").stdout
    installed = {line.lower().replace("_", "-") for line in freeze.split()}
    assert executor_pins() <= installed
    version = executor_lab.ssh(EXECUTOR_NAME, f"{EXECUTOR_BIN}/ansible-runner --version").stdout.strip()
    assert f"ansible-runner=={version}" in installed
    # The wheels came from the lab's bundle, published in the mirror's current release.
    carried = sorted(p.name for p in (executor_lab.paths.mirror_dir / "current" / "wheels").glob("*.whl"))
    assert len(carried) == len(executor_pins())
    # apt reads the signed site mirror, as on a node; python3-venv came through it.
    sources = executor_lab.ssh(EXECUTOR_NAME, "cat /etc/apt/sources.list.d/ecohash-site-mirror.sources").stdout
    assert "http://10.213.0.1:8080" in sources


def lab_access() -> tuple[Executor, NodeAccess]:
    site = load_site(inventory_file())
    executor = Executor.of_site(site)
    assert executor is not None
    inventory = inventory_for(site)
    return executor, NodeAccess.of_site(executor, site, inventory,
                                        remote._node_host(site, inventory, LAB_HOSTS[0]))


def test_the_forwarded_agent_holds_the_sites_key_alone_and_only_for_hops_to_the_nodes(
    executor_lab: Lab,
) -> None:
    executor, access = lab_access()
    node = executor_lab.status().hosts[0].address
    # On the executor, through the agent a wave forwards to it: what it holds, a hop to a
    # node, and a hop to a host outside the site: the executor itself, no node, whose root
    # takes the site's key (the controller has just logged in with it). Host keys are
    # unchecked here so that the agent alone decides; the agent offers no key for a hop
    # its constraints do not allow, or refuses to sign.
    hop = "ssh -v -F none -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
    probe = (f"ssh-add -l; echo; {hop} root@{node} true 2>/dev/null; echo node=$?; "
             f"{hop} root@{EXECUTOR_ADDRESS} true 2>/tmp/hop.log; echo outside=$?; "
             "grep -E 'Offering public key|agent refused|Authenticated to' /tmp/hop.log >&2; rm -f /tmp/hop.log")
    with executor.transport(probe, access) as argv:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    held, _, hops = done.stdout.partition("\n\n")
    site_key = subprocess.run(["ssh-keygen", "-lf", str(executor_lab.paths.ssh_key)], capture_output=True,
                              text=True, check=True).stdout.split()[1]
    assert [line.split()[1] for line in held.splitlines()] == [site_key], done.stdout + done.stderr
    assert hops.split() == ["node=0", "outside=255"], done.stdout + done.stderr
    assert "Authenticated to" not in done.stderr, done.stderr


def test_a_wave_through_the_constrained_agent_reaches_every_node(executor_lab: Lab, tmp_path: Path) -> None:
    # The site's known hosts alone, and a key usable only for executor-to-node hops, are
    # what a real wave needs: Ansible on the executor reaches each node.
    result = run_playbook(PlaybookRun(site_name="lab", site_file=inventory_file(), playbook="reachable.yml",
                                      hosts=LAB_HOSTS, executor=Executor.of_site(load_site(inventory_file())),
                                      directory=tmp_path / "run"), on_update=lambda _progress: None)
    assert (result.status, result.rc, result.reason) == ("successful", 0, None), result.directory
    assert sorted(result.stats["ok"]) == sorted(LAB_HOSTS)


def test_an_executor_that_streams_back_a_crafted_zip_is_refused_and_nothing_is_written(
    executor_lab: Lab, tmp_path: Path,
) -> None:
    # The controller's keys, and a worker on the executor that answers with a stream whose
    # artifact zip would write them through a link.
    keys = tmp_path / "controller-ssh"
    keys.mkdir()
    (keys / "authorized_keys").write_text("ssh-ed25519 AAAA operator\n")
    crafted = stream([symlink("l", str(keys)), member("l/authorized_keys", b"ssh-ed25519 ATTACKER\n")])
    runner = f"{EXECUTOR_BIN}/ansible-runner"
    executor_lab.ssh(EXECUTOR_NAME, "cat > /root/crafted-stream", input_bytes=crafted)
    executor_lab.ssh(EXECUTOR_NAME, f"mv {runner} {runner}.real && printf '%s\\n' '#!/bin/sh' "
                     f"'cat >/dev/null' 'cat /root/crafted-stream' > {runner} && chmod 755 {runner}")
    try:
        result = run_playbook(PlaybookRun(site_name="lab", site_file=inventory_file(), playbook="reachable.yml",
                                          hosts=[LAB_HOSTS[0]], executor=Executor.of_site(load_site(inventory_file())),
                                          directory=tmp_path / "run"), on_update=lambda _progress: None)
    finally:
        executor_lab.ssh(EXECUTOR_NAME, f"mv {runner}.real {runner}; rm -f /root/crafted-stream")
    assert result.status == "failed"
    assert result.reason == (f"executor {EXECUTOR_ADDRESS}: artifact member 'l' is a symbolic link; "
                             "nothing of it was written")
    assert [path.name for path in keys.iterdir()] == ["authorized_keys"]
    assert (keys / "authorized_keys").read_text() == "ssh-ed25519 AAAA operator\n"
    assert not [path for path in (tmp_path / "run").rglob("*") if path.is_symlink() or path.name == "l"]


def test_the_executor_role_changes_nothing_on_a_second_run_nor_in_check_mode(executor_lab: Lab) -> None:
    for check in (False, True):
        result = run_playbook(PlaybookRun(site_name="lab", site_file=inventory_file(), playbook="executor.yml",
                                          check=check), on_update=lambda _progress: None)
        assert result.rc == 0, (check, result.directory)
        changed = {name: host.changes for name, host in result.hosts.items() if host.counts["changed"]}
        assert changed == {}, (check, changed)
        # The executor alone (named as the site file names it), and the play that adds it.
        assert set(result.hosts) == {str(EXECUTOR_ADDRESS), "localhost"}, result.hosts


def test_a_provision_through_the_executor_passes_and_the_controller_runs_no_ansible(
    provisioned: Provisioned,
) -> None:
    assert provisioned.first.returncode == 0, provisioned.first.stdout[-3000:] + provisioned.first.stderr[-3000:]
    report = json.loads(provisioned.first.stdout)
    assert report["outcome"] == "completed"
    assert statuses(report) == dict.fromkeys(LAB_HOSTS, "passed")
    programs = provisioned.watch.programs
    assert programs, "the watch saw no process under the provision"
    assert "ansible-playbook" not in programs, programs
    assert "ssh" in programs, programs  # what carried the wave to the executor
    # Each node was configured from the executor's address (preflight and verification
    # still connect from the controller, on the bridge).
    for node in LAB_HOSTS:
        assert str(EXECUTOR_ADDRESS) in sshd_sources(provisioned.lab, node), node


def test_drift_through_the_executor_finds_a_hand_edit_and_nothing_else(provisioned: Provisioned) -> None:
    lab = provisioned.lab
    node = LAB_HOSTS[-1]
    original = lab.ssh(node, f"cat {MANAGED_FILE}").stdout
    lab.ssh(node, f"echo '// by hand' >> {MANAGED_FILE}")
    try:
        edited, watch = watched("drift", "lab")
    finally:
        lab.ssh(node, f"cat > {MANAGED_FILE}", input_bytes=original.encode())
    assert edited.returncode == 2, edited.stdout + edited.stderr
    assert f"{node}: drifted" in edited.stdout and MANAGED_FILE in edited.stdout
    report = drift_report(edited)
    # The provision left the other nodes standard, and drift through the executor says so.
    assert nodes_by_status(report) == {**dict.fromkeys(LAB_HOSTS, "in-standard"), node: "drifted"}
    assert "ansible-playbook" not in watch.programs, watch.programs


def executor_pids(lab: Lab, pattern: str) -> list[str]:
    found = lab.ssh(EXECUTOR_NAME, f"pgrep -f -- {pattern!r}", check=False).stdout.split()
    return [pid for pid in found if pid.isdigit()]


def test_an_executor_killed_mid_wave_fails_that_wave_clearly_and_a_rerun_resumes(
    provisioned: Provisioned,
) -> None:
    lab = provisioned.lab
    killed: list[str] = []

    def kill_the_executor_in_wave_2(line: str, _process: subprocess.Popen[str]) -> None:
        if not line.startswith("wave 2 ") or killed:
            return
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            # The worker and the Ansible it started: the executor's whole share of the wave.
            pids = executor_pids(lab, "ansible-runner worker") + executor_pids(lab, "ansible-playbook")
            if pids:
                lab.ssh(EXECUTOR_NAME, f"kill -KILL {' '.join(pids)}", check=False)
                killed.extend(pids)
            time.sleep(0.2)

    # Less cooling for c01 lowers both its nodes' caps: real work for a canary and a wave 2.
    with edited_site("cooling_kw: 2.4", "cooling_kw: 2.2"):
        run: Provision = provision(on_line=kill_the_executor_in_wave_2)
        assert killed, run.output
        assert run.returncode == 1, run.output
        assert run.report["outcome"] == "stopped", run.report
        # The wave's node was not run (no failure of its own), the reason naming the
        # executor; the canary passed before it died.
        left = {node["name"]: node["reason"] for node in run.report["nodes"] if node["status"] == "not-run"}
        assert list(left) == ["c01-r01-n02"], run.report["nodes"]
        assert f"executor {EXECUTOR_ADDRESS}" in left["c01-r01-n02"], left
        assert statuses(run.report)["c01-r01-n01"] == "passed"

        rerun = provision()
    assert rerun.returncode == 0, rerun.output
    assert statuses(rerun.report) == {**dict.fromkeys(LAB_HOSTS, "skipped"), "c01-r01-n02": "passed"}
    assert [wave["nodes"] for wave in rerun.report["waves"]] == [["c01-r01-n02"]]


def test_nothing_secret_is_left_on_the_executor(provisioned: Provisioned) -> None:
    lab = provisioned.lab
    token = (state_dir() / "secrets" / "lab" / "k3s-token").read_text().strip()
    # A line from the private key's secret part: its first lines of data are a header every
    # ed25519 key shares (the executor's own host key holds them too).
    key = lab.paths.ssh_key.read_text().splitlines()[4]
    assert len(token) == 64 and len(key) > 40
    record = state.load(lab.paths.state_file)
    assert record is not None and record.executor is not None
    # Everything the executor wrote to its disk is in its own layer, read here as files;
    # its tmpfs directories are searched on it.
    written = Path(record.executor.directory) / "upper"
    leaks = [path for path in written.rglob("*") if path.is_file() and not path.is_symlink()
             and (token.encode() in path.read_bytes() or key.encode() in path.read_bytes())]
    assert leaks == []
    for secret in (token, key):
        found = lab.ssh(EXECUTOR_NAME, "grep -rlF -f - /run /tmp /dev/shm /root 2>/dev/null",
                        input_bytes=secret.encode() + b"\n", check=False)
        assert found.stdout.strip() == "", found.stdout


def test_a_plain_lab_up_takes_the_executor_away_with_the_old_lab(provisioned: Provisioned) -> None:
    lab = provisioned.lab
    record = state.load(lab.paths.state_file)
    assert record is not None and record.executor is not None
    old = record.executor
    lab.up()  # what the next module gets: the lab as `lab up` makes it
    status = lab.status()
    assert status.executor is None and [h.name for h in status.hosts] == LAB_HOSTS
    assert f"ecolab-{EXECUTOR_NAME}" not in network.lab_namespaces()
    assert old.veth not in network.lab_links()
    assert old.process is not None and not old.process.is_alive()
    assert not Path(old.directory).exists()
    assert EXECUTOR_NAME not in lab.paths.known_hosts.read_text()
    assert "executor" not in yaml.safe_load(inventory_file().read_text())["spec"]["provisioning"]
    assert os.path.exists(lab.paths.ssh_config) and EXECUTOR_NAME not in lab.paths.ssh_config.read_text()
