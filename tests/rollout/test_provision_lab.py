"""`ecohash provision lab` against the issue, on real lab hosts, through the real CLI.

One sequence, each step building on the last (a full rollout takes minutes):
a full provision of fresh hosts (the session's offline lab's, shared with the other
tests of the provisioned lab); a second one with no changes; a forced one during
which a host dies; a re-run that finishes that host alone; a concurrent provision
refused; and one interrupted with Ctrl-C, then resumed.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ecohash.paths import state_dir
from ecohash.rollout.report import REPORT_SCHEMA
from tests.labhosts import Lab
from tests.roles.bootstraps import ECOHASH, LAB_HOSTS, SERVER

pytestmark = pytest.mark.lab

STATE_FILE = Path("rollouts") / "lab" / "state.json"
REPORT_MARKER = "report: "


@dataclass
class Provision:
    returncode: int
    output: str
    report: dict[str, Any]
    seconds: float


def provision(*arguments: str, on_line: Any = None) -> Provision:
    """Run the CLI, reading its output as it comes; on_line(line, process) sees every line."""
    started = time.monotonic()
    process = subprocess.Popen([ECOHASH, "provision", "lab", *arguments], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    lines = []
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        if on_line is not None:
            on_line(line, process)
    returncode = process.wait(timeout=900)
    output = "".join(lines)
    found = [line for line in lines if line.startswith(REPORT_MARKER)]
    assert found, f"no report in the output:\n{output}"
    html = Path(found[-1][len(REPORT_MARKER):].split()[0])
    report = json.loads(html.with_name("report.json").read_text())
    return Provision(returncode, output, report, time.monotonic() - started)


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {node["name"]: node["status"] for node in report["nodes"]}


def rollout_state() -> dict[str, Any]:
    return json.loads((state_dir() / STATE_FILE).read_text())


def ssh_logins(lab: Lab, node: str) -> int:
    journal = lab.ssh(node, "journalctl -q --no-pager -u ssh.service | grep -c 'Accepted publickey'",
                      check=False)
    return int(journal.stdout.strip() or 0)


@dataclass
class Provisioned:
    lab: Lab
    first: Provision
    first_json: str


@pytest.fixture(scope="module")
def first_provision(provisioned_lab: Lab) -> Provisioned:
    """The session's offline provision of fresh hosts (shared: it takes minutes); this
    module runs before the others that use the provisioned lab, so nothing changed since."""
    run = provisioned_lab.provision_offline()
    report = json.loads(run.stdout)  # --json: stdout is the report alone
    return Provisioned(provisioned_lab, Provision(0, run.stderr, report, run.seconds), run.stdout)


def test_a_full_provision_passes_every_host_in_a_canary_wave_then_the_rest(first_provision: Provisioned) -> None:
    report = first_provision.first.report
    assert report["outcome"] == "completed"
    assert statuses(report) == dict.fromkeys(LAB_HOSTS, "passed")
    assert report["totals"] == {"nodes": 4, "passed": 4, "failed": 0, "skipped": 0, "not_run": 0}
    canary, *rest = report["waves"]
    # The Kubernetes server and one node of the other container go first.
    assert (canary["name"], canary["nodes"]) == ("canary", [SERVER, "c02-r01-n01"])
    assert [node for wave in rest for node in wave["nodes"]] == ["c01-r01-n02", "c02-r01-n02"]
    for node in report["nodes"]:
        assert node["verdict"]["passed"] is True and node["verdict"]["simulated"] is True
        assert node["checks"] and all(check["passed"] for check in node["checks"]), node["checks"]
        assert node["gpu_draw_w"] is not None
    assert report["simulated"] is True
    # No pulumi CLI here: the stack is rendered into the run, and the report says why.
    stack = report["stack"]
    assert stack["action"] == "rendered" and "pulumi" in stack["reason"]
    assert stack["objects"] == len(list(Path(stack["directory"]).rglob("*.yaml"))) > 10


def test_caps_on_the_hosts_are_the_plan_s_and_the_report_and_state_agree(first_provision: Provisioned) -> None:
    plan = json.loads(subprocess.run([ECOHASH, "plan", "lab", "--json"], capture_output=True, text=True,
                                     check=True).stdout)
    caps = {node["name"]: node["gpu_cap_w"] for node in plan["nodes"]}
    state = rollout_state()
    for node in first_provision.first.report["nodes"]:
        name = node["name"]
        assert node["gpu_cap_w"] == caps[name]
        limits = first_provision.lab.ssh(
            name, "nvidia-smi --query-gpu=power.limit --format=csv,noheader,nounits").stdout.split()
        assert limits == [f"{caps[name]:.2f}"] * 2
        recorded = state["nodes"][name]
        assert (recorded["status"], recorded["fingerprint"], recorded["cap_w"]) == \
            ("passed", node["fingerprint"], caps[name])
        assert recorded["run"] == first_provision.first.report["run"]


def test_the_report_is_stored_with_the_run_in_three_forms(first_provision: Provisioned) -> None:
    directory = Path(first_provision.first.report["directory"])
    # The same report, but for its version: the stored file's (REPORT_SCHEMA), the output's
    # the JSON contract's stamp (docs/json.md).
    stored = json.loads((directory / "report.json").read_text())
    printed = dict(first_provision.first.report)
    assert (stored.pop("schema"), printed.pop("schema")) == (REPORT_SCHEMA, "ecohash.provision/2")
    assert stored == printed
    html = (directory / "report.html").read_text()
    assert "SIMULATED" in html and all(name in html for name in LAB_HOSTS)
    assert "lab" in (directory / "report.txt").read_text()
    assert sorted(p.name for p in directory.glob("wave-*")) == ["wave-01", "wave-02"]


def test_status_shows_every_node_current(first_provision: Provisioned) -> None:
    status = json.loads(subprocess.run([ECOHASH, "status", "lab", "--json"], capture_output=True,
                                       text=True, check=True).stdout)
    assert status["counts"] == {"current": 4}
    assert {node["name"]: node["current"] for node in status["nodes"]} == dict.fromkeys(LAB_HOSTS, True)


def test_a_second_provision_touches_no_host_and_takes_a_fraction_of_the_time(
    first_provision: Provisioned,
) -> None:
    logins = {name: ssh_logins(first_provision.lab, name) for name in LAB_HOSTS}
    second = provision()
    assert second.returncode == 0, second.output
    assert statuses(second.report) == dict.fromkeys(LAB_HOSTS, "skipped")
    assert second.report["waves"] == []
    # Not one SSH session was opened on any host (the count above opened one each).
    assert {name: ssh_logins(first_provision.lab, name) - 1 for name in LAB_HOSTS} == logins
    assert second.seconds < 0.3 * first_provision.first.seconds, (second.seconds, first_provision.first.seconds)


def test_secrets_reach_no_report_state_or_output(first_provision: Provisioned) -> None:
    token = (state_dir() / "secrets" / "lab" / "k3s-token").read_text().strip()
    assert len(token) == 64
    directory = Path(first_provision.first.report["directory"])
    texts = [first_provision.first.output, first_provision.first_json, (state_dir() / STATE_FILE).read_text()]
    texts += [p.read_text(errors="replace") for p in directory.rglob("*") if p.is_file()]
    assert all(token not in text for text in texts)


def test_a_host_dying_mid_run_fails_alone_and_a_rerun_finishes_it(first_provision: Provisioned) -> None:
    dead = "c02-r01-n02"  # in the second wave
    link = ["ip", "-n", f"ecolab-{dead}", "link", "set", "eth0"]
    before = rollout_state()["nodes"][dead]

    def kill_in_second_wave(line: str, _process: subprocess.Popen[str]) -> None:
        if line.startswith("wave 2 "):
            subprocess.run([*link, "down"], check=True)

    # Sharded (the lab's 4 nodes would default to one job): the second wave runs as two
    # jobs of one node each, the dead host's alone, and the results are the one job's.
    try:
        run = provision("--force", "--shards", "2", on_line=kill_in_second_wave)
    finally:
        subprocess.run([*link, "up"], check=True)
    assert run.returncode == 1, run.output
    assert statuses(run.report) == {**dict.fromkeys(LAB_HOSTS, "passed"), dead: "unreachable"}
    assert [failed["name"] for failed in run.report["failed"]] == [dead]
    assert "SSH" in run.report["failed"][0]["reason"]
    assert run.report["outcome"] == "completed"  # 1 of 4 is within the lab's 50%
    canary, second = run.report["waves"]
    assert (canary["shards"], second["shards"]) == (1, 2)  # the server's wave is one job
    assert [wave["nodes"] for wave in run.report["waves"]] == \
        [wave["nodes"] for wave in first_provision.first.report["waves"]]
    jobs = sorted(Path(second["directory"]).glob("shard-*/hosts.limit"))
    assert [job.read_text().split() for job in jobs] == [[name] for name in second["nodes"]]
    first = {node["name"]: node for node in first_provision.first.report["nodes"]}
    for node in run.report["nodes"]:
        if node["name"] != dead:  # the same fingerprint, verdict and checks as the unsharded run's
            same = first[node["name"]]
            assert (node["fingerprint"], node["wave"], node["verdict"]) == \
                (same["fingerprint"], same["wave"], same["verdict"])
            assert [(c["name"], c["passed"]) for c in node["checks"]] == \
                [(c["name"], c["passed"]) for c in same["checks"]]
    recorded = rollout_state()["nodes"][dead]
    assert recorded["status"] == "unreachable"
    assert recorded["last_passed"] == before["last_passed"]  # nothing recorded is lost

    rerun = provision()
    assert rerun.returncode == 0, rerun.output
    assert statuses(rerun.report) == {**dict.fromkeys(LAB_HOSTS, "skipped"), dead: "passed"}
    assert [wave["nodes"] for wave in rerun.report["waves"]] == [[dead]]


def test_a_concurrent_provision_is_refused_and_ctrl_c_leaves_state_consistent(
    first_provision: Provisioned,
) -> None:
    node = "c01-r01-n02"
    refused: list[subprocess.CompletedProcess[str]] = []
    interrupted_at: list[float] = []

    def contend_then_interrupt(line: str, process: subprocess.Popen[str]) -> None:
        if line.startswith("preflight:") and not refused:
            refused.append(subprocess.run([ECOHASH, "provision", "lab"], capture_output=True, text=True,
                                          timeout=60, check=False))
        if line.startswith("canary ") and not interrupted_at:
            time.sleep(3)  # into the Ansible run
            process.send_signal(signal.SIGINT)
            interrupted_at.append(time.monotonic())

    others = {name: record for name, record in rollout_state()["nodes"].items() if name != node}
    run = provision("--force", "--limit", node, on_line=contend_then_interrupt)
    assert refused and refused[0].returncode == 1
    assert "site lab is busy: `ecohash provision` by root@" in refused[0].stderr
    assert refused[0].stdout == ""

    assert run.returncode == 130, run.output
    assert time.monotonic() - interrupted_at[0] < 60  # Ansible was stopped, not waited for
    assert run.report["outcome"] == "interrupted"
    assert statuses(run.report) == {node: "interrupted"}
    state = rollout_state()
    assert state["nodes"][node]["status"] == "interrupted"
    assert state["nodes"][node]["last_passed"] is not None
    assert {name: state["nodes"][name] for name in others} == others  # untouched
    assert state["runs"][-1]["outcome"] == "interrupted"

    resumed = provision()
    assert resumed.returncode == 0, resumed.output
    assert statuses(resumed.report) == {**dict.fromkeys(LAB_HOSTS, "skipped"), node: "passed"}
