"""What a provision records must be what happened: driven by recorded-style ansible-runner
events, with SSH (preflight, verification) and the stack faked; no lab.

A node counts as run only on positive evidence, the node play's last task; a run that
raises after it started is recorded failed (or interrupted) in state and in every report.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import ansible_runner
import pytest
import yaml

from ecohash.ansible.runner import NODE_RAN_TASK
from ecohash.errors import EcohashError
from ecohash.inventory import load_site
from ecohash.inventory.site import Site
from ecohash.paths import project_root
from ecohash.rollout import preflight
from ecohash.rollout import provision as provision_module
from ecohash.rollout.provision import NOT_RUN, ProvisionRequest, provision
from ecohash.rollout.state import FAILED, PASSED, RolloutState
from ecohash.rollout.verify import Check, Verification

SITE = "nd-williston"
SERVER = "c01-cp-n01"  # the site's Kubernetes server: in the canary
AGENT = "c02-r01-n01"  # c02's first node: in the canary too (c02 has no server)
LATER = "c01-r01-n01"  # c01 has its server in the canary: this one waits for wave 2
SCOPE = f"{SERVER},{AGENT},{LATER}"
K3S_FAILURE = "Install the k3s server"


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ECOHASH_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


@pytest.fixture
def site() -> Site:
    return load_site(project_root() / "inventories" / SITE / "site.yaml")  # read only


@pytest.fixture
def verified(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every node answers the preflight and passes verification; returns who was verified."""
    names: list[str] = []

    def probe_all(targets: list[preflight.Target], **_: Any) -> dict[str, preflight.ProbeResult]:
        return {t.name: preflight.ProbeResult(t.name, True, None, "/usr/bin/python3", 0.1) for t in targets}

    def verify_nodes(targets: list[Any]) -> dict[str, Verification]:
        names.extend(target.name for target in targets)
        return {t.name: Verification(t.name, [Check("containerd running", True, "active")]) for t in targets}

    monkeypatch.setattr(preflight, "probe_all", probe_all)
    monkeypatch.setattr(provision_module, "verify_nodes", verify_nodes)
    return names


@pytest.fixture
def stack_rendered(monkeypatch: pytest.MonkeyPatch) -> None:
    """No pulumi here: the stack step renders (for real) and does not apply."""
    from ecohash.stack import automation

    monkeypatch.setattr(automation, "apply_blocker", lambda site: "no pulumi CLI on PATH (test)")


# --- ansible-runner, as its events look ------------------------------------------------------

Event = dict[str, Any]


def event(kind: str, host: str, task: str, res: dict[str, Any] | None = None, **data: Any) -> Event:
    return {"event": kind, "created": "2026-11-21T10:00:00.000000",
            "event_data": {"host": host, "task": task, "res": res or {}, **data}}


def ok(host: str, task: str, **res: Any) -> list[Event]:
    return [event("runner_on_start", host, task), event("runner_on_ok", host, task, {"changed": False, **res})]


def reachability(host: str) -> list[Event]:
    return ok(host, "Wait for SSH, briefly") + ok(host, "Put each node in ecohash_reachable or ecohash_unreachable")


def node_play(host: str) -> list[Event]:
    """A node that ran its play to the end: facts, roles, the health verdict, the last task."""
    return (ok(host, "Gathering Facts") + ok(host, "Install the pinned packages", changed=True)
            + ok(host, "Run the acceptance checks and write the verdict",
                 verdict={"passed": True, "failed_checks": []})
            + ok(host, NODE_RAN_TASK))


@contextmanager
def ansible(monkeypatch: pytest.MonkeyPatch,
            play: Callable[[list[str]], tuple[list[Event], int, str]]) -> Iterator[list[list[str]]]:
    """ansible_runner.run replaced: `play(hosts)` gives the events, rc and status of a wave."""
    waves: list[list[str]] = []

    def run(**kwargs: Any) -> SimpleNamespace:
        hosts = Path(kwargs["limit"].removeprefix("@")).read_text().split()
        waves.append(hosts)
        events, rc, status = play(hosts)
        for item in events:
            kwargs["event_handler"](item)
        failures = {e["event_data"]["host"]: 1 for e in events if e["event"] == "runner_on_failed"}
        return SimpleNamespace(rc=rc, status=status, stats={"failures": failures, "dark": {}})

    monkeypatch.setattr(ansible_runner, "run", run)
    yield waves


def every_node_converges(hosts: list[str]) -> tuple[list[Event], int, str]:
    return [e for h in hosts for e in reachability(h)] + [e for h in hosts for e in node_play(h)], 0, "successful"


def server_fails_in_the_canary(hosts: list[str]) -> tuple[list[Event], int, str]:
    """The servers' play (serial 1, max_fail_percentage 0) fails on the server, and Ansible
    ends the whole playbook: the other canary node only ever saw the reachability play."""
    if SERVER not in hosts:
        return every_node_converges(hosts)
    events = [e for h in hosts for e in reachability(h)]
    events += ok(SERVER, "Gathering Facts") + [
        event("runner_on_start", SERVER, K3S_FAILURE),
        event("runner_on_failed", SERVER, K3S_FAILURE, {"msg": "checksum mismatch"}),
    ]
    return events, 2, "failed"


def run_provision(site: Site, **options: Any) -> dict[str, Any]:
    display = SimpleNamespace(say=lambda text: None, wave=lambda title: _no_progress())
    return provision(ProvisionRequest(site=site, limit=SCOPE, **options), display, threading.Event())


@contextmanager
def _no_progress() -> Iterator[Callable[[Any], None]]:
    yield lambda progress: None


def run_files(state_dir: Path) -> tuple[dict[str, Any], dict[str, Any], str, str]:
    """The last run's line in state.json, and its report.json, report.txt and report.html."""
    state = json.loads((state_dir / "rollouts" / SITE / "state.json").read_text())
    run = state["runs"][-1]
    directory = Path(run["directory"])
    return (run, json.loads((directory / "report.json").read_text()),
            (directory / "report.txt").read_text(), (directory / "report.html").read_text())


# --- a node runs only when its play says so -------------------------------------------------


def test_the_node_play_ends_with_the_task_that_says_a_node_ran() -> None:
    # The code finds a node's last task by this name; the playbook must end every node's play with it.
    play = yaml.safe_load((project_root() / "playbooks" / "node.yml").read_text())[0]
    last = play["post_tasks"][-1]
    assert last["name"] == NODE_RAN_TASK
    assert "when" not in last and "ignore_errors" not in last  # every host that got there, and only those


def test_nodes_that_ran_their_play_are_verified_and_recorded(
        site: Site, verified: list[str], stack_rendered: None, state_dir: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    with ansible(monkeypatch, every_node_converges) as waves:
        report = run_provision(site)
    assert waves == [[SERVER, AGENT], [LATER]]
    assert {n["name"]: n["status"] for n in report["nodes"]} == {SERVER: PASSED, AGENT: PASSED, LATER: PASSED}
    assert sorted(verified) == sorted([SERVER, AGENT, LATER])
    assert report["outcome"] == "completed"
    state = RolloutState.load(SITE)
    assert {name: record.status for name, record in state.nodes.items()} == \
        {SERVER: PASSED, AGENT: PASSED, LATER: PASSED}


def test_a_node_the_playbook_ended_before_is_not_run_not_verified_not_recorded(
        site: Site, verified: list[str], stack_rendered: None, state_dir: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    with ansible(monkeypatch, server_fails_in_the_canary) as waves:
        report = run_provision(site, max_fail_pct=100)
    nodes = {n["name"]: n for n in report["nodes"]}
    assert nodes[SERVER]["status"] == FAILED
    assert nodes[SERVER]["reason"] == f"{K3S_FAILURE}: checksum mismatch"
    agent = nodes[AGENT]
    assert agent["status"] == NOT_RUN
    assert agent["reason"] == (f"the playbook ended before this node ran: {SERVER} failed: "
                               f"{K3S_FAILURE}: checksum mismatch")
    assert agent["wave"] == 1
    assert AGENT not in verified
    # Nothing recorded for it: no pass at the new fingerprint, and no failure it did not have.
    state = RolloutState.load(SITE)
    assert AGENT not in state.nodes
    assert state.nodes[SERVER].status == FAILED
    # A wave Ansible cut short stops the rollout even when failures alone would not.
    assert waves == [[SERVER, AGENT]]
    assert report["outcome"] == "stopped"
    assert "canary" in report["message"] and AGENT in report["message"]
    run, saved, text, html = run_files(state_dir)
    assert run["outcome"] == saved["outcome"] == "stopped"
    assert {n["name"]: (n["status"], n["reason"]) for n in saved["nodes"]}[AGENT] == (NOT_RUN, agent["reason"])
    assert f"{AGENT}: {agent['reason']}" in text  # the "not run:" section, whatever the site's size
    assert "status-not-run" in html and agent["reason"] in html


def test_a_node_with_reachability_events_only_is_not_taken_for_converged_on_success(
        site: Site, verified: list[str], stack_rendered: None, state_dir: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # rc 0 and events for every host, yet one host never reached its play's last task.
    def agent_never_played(hosts: list[str]) -> tuple[list[Event], int, str]:
        events, rc, status = every_node_converges(hosts)
        return [e for e in events if not (e["event_data"]["host"] == AGENT
                                           and e["event_data"]["task"] == NODE_RAN_TASK)], rc, status

    with ansible(monkeypatch, agent_never_played):
        report = run_provision(site)
    agent = {n["name"]: n for n in report["nodes"]}[AGENT]
    assert (agent["status"], agent["reason"]) == \
        (NOT_RUN, "the playbook ended before this node ran (ansible-playbook successful, rc 0)")
    assert AGENT not in verified and AGENT not in RolloutState.load(SITE).nodes


# --- a run that raises is recorded as such --------------------------------------------------


def _apply_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    from ecohash.stack import automation

    def apply_site(site: Site, **_: Any) -> None:
        raise EcohashError("pulumi up failed: the API server refused the connection")

    monkeypatch.setattr(automation, "apply_blocker", lambda site: None)
    monkeypatch.setattr(automation, "apply_site", apply_site)


def _render_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def checked_render(site: Site, standard: Any) -> None:
        raise EcohashError("stack render: ConfigMap power-budget: policy violated")

    monkeypatch.setattr(provision_module, "checked_render", checked_render)


def _runner_crashes(monkeypatch: pytest.MonkeyPatch) -> None:
    def run(**_: Any) -> None:
        raise RuntimeError("ansible-runner: the event stream broke")

    monkeypatch.setattr(ansible_runner, "run", run)


@pytest.mark.parametrize(("break_it", "error", "stack"), [
    (_apply_fails, "pulumi up failed: the API server refused the connection", "failed"),
    (_render_fails, "stack render: ConfigMap power-budget: policy violated", "failed"),
    (_runner_crashes, "RuntimeError: ansible-runner: the event stream broke", "not-run"),
], ids=["stack-apply", "stack-render", "runner-crash"])
def test_a_run_that_raises_is_recorded_failed_with_the_error(
        site: Site, verified: list[str], state_dir: Path, monkeypatch: pytest.MonkeyPatch,
        break_it: Callable[[pytest.MonkeyPatch], None], error: str, stack: str) -> None:
    with ansible(monkeypatch, every_node_converges):
        break_it(monkeypatch)
        with pytest.raises(Exception) as raised:
            run_provision(site)
    assert error.endswith(str(raised.value))  # the error itself goes on, to the usual exit code
    run, saved, text, html = run_files(state_dir)
    assert run["outcome"] == saved["outcome"] == "failed"
    assert error in run["message"] and error in saved["message"]
    assert ": failed in " in text.splitlines()[0] and error in text
    assert 'outcome-failed">failed<' in html and error in html
    assert saved["stack"]["action"] == stack


def test_an_interrupt_that_raises_is_recorded_interrupted(
        site: Site, verified: list[str], state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def apply_blocker(site: Site) -> None:
        raise KeyboardInterrupt

    from ecohash.stack import automation

    monkeypatch.setattr(automation, "apply_blocker", apply_blocker)
    with ansible(monkeypatch, every_node_converges), pytest.raises(KeyboardInterrupt):
        run_provision(site)
    run, saved, text, html = run_files(state_dir)
    assert run["outcome"] == saved["outcome"] == "interrupted"
    assert ": interrupted in " in text.splitlines()[0]
    assert saved["stack"]["action"] == "interrupted" and 'outcome-interrupted">interrupted<' in html
    # What finished before the interrupt stays recorded.
    assert {record.status for record in RolloutState.load(SITE).nodes.values()} == {PASSED}


# --- sharded waves: the same results as one job -----------------------------------------------


def _whole_site(site: Site, state_dir: Path, monkeypatch: pytest.MonkeyPatch,
                play: Callable[[list[str]], tuple[list[Event], int, str]], **options: Any
                ) -> tuple[dict[str, Any], list[list[str]], dict[str, Any]]:
    """Every node of the site in a canary and one more wave; the report, each ansible-runner
    job's hosts and what state recorded of each node (less the run's name and times)."""
    display = SimpleNamespace(say=lambda text: None, wave=lambda title: _no_progress())
    with ansible(monkeypatch, play) as jobs:
        report = provision(ProvisionRequest(site=site, wave_size=100, max_fail_pct=100, **options),
                           display, threading.Event())
    state = json.loads((state_dir / "rollouts" / SITE / "state.json").read_text())
    recorded = {name: {key: value for key, value in record.items() if key not in ("run", "time", "last_passed")}
                for name, record in state["nodes"].items()}
    return report, jobs, recorded


def one_node_fails(hosts: list[str]) -> tuple[list[Event], int, str]:
    events, _, _ = every_node_converges([h for h in hosts if h != "c02-r03-n04"])
    if "c02-r03-n04" not in hosts:
        return events, 0, "successful"
    return events + ok("c02-r03-n04", "Gathering Facts") + [
        event("runner_on_failed", "c02-r03-n04", "Install the pinned packages", {"msg": "no space left"})], 2, "failed"


def test_sharded_waves_give_the_results_of_one_job(
        site: Site, verified: list[str], stack_rendered: None, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECOHASH_STATE_DIR", str(tmp_path / "one"))
    one, one_jobs, one_state = _whole_site(site, tmp_path / "one", monkeypatch, one_node_fails, shards=1)
    monkeypatch.setenv("ECOHASH_STATE_DIR", str(tmp_path / "sharded"))
    sharded, jobs, sharded_state = _whole_site(site, tmp_path / "sharded", monkeypatch, one_node_fails, shards=3)

    def results(report: dict[str, Any]) -> dict[str, Any]:
        return {n["name"]: (n["status"], n["reason"], n["wave"], n["verdict"]) for n in report["nodes"]}

    assert results(sharded) == results(one)
    assert results(one)["c02-r03-n04"][:2] == (FAILED, "Install the pinned packages: no space left")
    assert sharded_state == one_state and len(one_state) == 57
    assert (sharded["outcome"], sharded["totals"], sharded["failed"]) == (one["outcome"], one["totals"], one["failed"])
    assert [(w["nodes"], w["failed"]) for w in sharded["waves"]] == [(w["nodes"], w["failed"]) for w in one["waves"]]
    # The canary (the server's wave) is one job either way; the 55 nodes after it, three.
    canary, rest = one_jobs
    assert SERVER in canary and len(rest) == 55
    assert jobs[0] == canary and sorted(h for job in jobs[1:] for h in job) == sorted(rest)
    assert sorted(map(len, jobs[1:])) == [18, 18, 19]
    assert [w["shards"] for w in sharded["waves"]] == [1, 3] and [w["shards"] for w in one["waves"]] == [1, 1]
    wave_2 = Path(sharded["waves"][1]["directory"])
    assert sorted(p.name for p in wave_2.glob("shard-*")) == ["shard-1", "shard-2", "shard-3"]
    assert sharded["options"]["shards"] == 3 and "--shards 3" in run_files(tmp_path / "sharded")[2]


def test_the_wave_with_the_kubernetes_servers_is_one_job_even_without_a_canary(
        site: Site, verified: list[str], stack_rendered: None, state_dir: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Its agents join servers that bootstrap.yml brings up first, one at a time, and the
    # first server makes the k3s join token: only one job keeps that order.
    report, jobs, _ = _whole_site(site, state_dir, monkeypatch, every_node_converges,
                                  shards=4, canary_per_container=0)
    assert [w["nodes"][0] for w in report["waves"]] == [SERVER]  # one wave of all 57 nodes
    assert len(jobs) == 1 and len(jobs[0]) == 57
    assert report["waves"][0]["shards"] == 1 and report["outcome"] == "completed"


def test_an_interrupt_stops_every_shard_of_a_wave_and_is_recorded_as_one_job_s(
        site: Site, verified: list[str], stack_rendered: None, state_dir: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    cancel = threading.Event()
    stopped: list[str] = []

    def run(**kwargs: Any) -> SimpleNamespace:
        hosts = Path(kwargs["limit"].removeprefix("@")).read_text().split()
        events, _, _ = every_node_converges(hosts) if SERVER in hosts else (
            [e for h in hosts for e in reachability(h)], 0, "")
        for item in events:
            kwargs["event_handler"](item)
        if SERVER in hosts:  # the canary converges; the sharded wave after it runs until stopped
            return SimpleNamespace(rc=0, status="successful", stats={"failures": {}, "dark": {}})
        threading.Timer(0.2, cancel.set).start()
        while not kwargs["cancel_callback"]():
            time.sleep(0.01)
        stopped.append(kwargs["private_data_dir"])
        return SimpleNamespace(rc=254, status="canceled", stats={"failures": {}, "dark": {}})

    monkeypatch.setattr(ansible_runner, "run", run)
    display = SimpleNamespace(say=lambda text: None, wave=lambda title: _no_progress())
    report = provision(ProvisionRequest(site=site, wave_size=100, shards=3), display, cancel)

    assert sorted(Path(directory).name for directory in stopped) == ["shard-1", "shard-2", "shard-3"]
    assert report["outcome"] == "interrupted"
    statuses = {n["name"]: n["status"] for n in report["nodes"]}
    assert statuses[SERVER] == statuses[AGENT] == PASSED
    assert {status for name, status in statuses.items() if name not in (SERVER, AGENT)} == {"interrupted"}
    assert {record.status for name, record in RolloutState.load(SITE).nodes.items()
            if name not in (SERVER, AGENT)} == {"interrupted"}
