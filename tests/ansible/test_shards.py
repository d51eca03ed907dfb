"""Sharded playbook runs: slices, the default count, merging, and a round trip through
run_playbook with ansible-runner replaced by a fake that plays each host's events."""

from __future__ import annotations

import itertools
import os
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import ansible_runner
import pytest

from ecohash.ansible import shards as shards_module
from ecohash.ansible.progress import ProgressView
from ecohash.ansible.runner import HostProgress, PlaybookRun, RunResult, run_playbook
from ecohash.ansible.shards import (
    MIN_NODES_PER_SHARD,
    merge_results,
    run_sharded,
    shard_count,
    slice_hosts,
)

HOSTS = [f"c{c:02d}-r01-n{n:02d}" for c in (1, 2, 3) for n in range(1, 8)]  # 21 hosts
SERVERS = ["c01-r01-n01", "c02-r01-n03", "c03-r01-n07"]  # spread over the site on purpose


# --- slices ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("count", "together"), list(itertools.product(
    [1, 2, 3, 4, 7, 20, 21, 50], [[], SERVERS, HOSTS[:12], HOSTS])))
def test_slices_are_disjoint_complete_ordered_and_keep_the_servers_together(
        count: int, together: list[str]) -> None:
    slices = slice_hosts(HOSTS, count, together)
    flat = [name for part in slices for name in part]
    assert sorted(flat) == sorted(HOSTS) and len(flat) == len(set(flat))  # each host once
    assert all(slices) and len(slices) <= count  # no empty job, never more than asked
    assert [name for name in HOSTS if name in set(flat)] == HOSTS
    for part in slices:  # each slice keeps the site's order
        assert part == sorted(part, key=HOSTS.index)
    if together:
        assert set(together) <= set(slices[0])
    else:
        assert max(map(len, slices)) - min(map(len, slices)) <= 1  # as even as can be
        assert len(slices) == min(count, len(HOSTS))


def test_a_large_server_group_is_one_slice_and_the_rest_share_the_others() -> None:
    slices = slice_hosts(HOSTS, 3, HOSTS[:12])
    assert slices == [HOSTS[:12], HOSTS[12:17], HOSTS[17:]]


def test_nothing_to_slice_and_a_bad_count() -> None:
    assert slice_hosts([], 4) == []
    assert slice_hosts(SERVERS, 4, SERVERS) == [SERVERS]  # servers alone: one job
    with pytest.raises(ValueError, match="at least 1"):
        slice_hosts(HOSTS, 0)


# --- how many shards ------------------------------------------------------------------------


def test_the_default_is_one_shard_per_core_but_never_small_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shards_module, "controller_cores", lambda: 16)
    assert shard_count(None, 4) == 1  # the lab
    assert shard_count(None, 2 * MIN_NODES_PER_SHARD - 1) == 1
    assert shard_count(None, 2 * MIN_NODES_PER_SHARD) == 2
    assert shard_count(None, 10 * MIN_NODES_PER_SHARD) == 10
    assert shard_count(None, 10_000) == 16
    assert shard_count(None, 0) == 1
    # Asked for: as many as asked, but no job without a node.
    assert shard_count(3, 4) == 3 and shard_count(8, 4) == 4 and shard_count(1, 10_000) == 1
    monkeypatch.setattr(shards_module, "controller_cores", lambda: 2)
    assert shard_count(None, 10_000) == 2


def test_controller_cores_are_this_process_s() -> None:
    assert shards_module.controller_cores() == len(os.sched_getaffinity(0))


# --- merging --------------------------------------------------------------------------------


def _result(status: str, rc: int, names: list[str], failed: tuple[str, ...] = ()) -> RunResult:
    hosts = {name: HostProgress(name) for name in names}
    stats = {"ok": dict.fromkeys(names, 3), "failures": dict.fromkeys(failed, 1), "dark": {}}
    return RunResult(rc=rc, status=status, directory=Path("/shard"), hosts=hosts, stats=stats)


@pytest.mark.parametrize(("statuses", "status", "rc"), [
    ([("successful", 0), ("successful", 0)], "successful", 0),
    ([("successful", 0), ("failed", 2)], "failed", 2),
    ([("failed", 2), ("canceled", 254), ("successful", 0)], "canceled", 254),
    ([("timeout", 254), ("successful", 0)], "timeout", 254),
])
def test_the_merged_status_is_the_worst_shard_s(statuses: list[tuple[str, int]], status: str, rc: int) -> None:
    results = [_result(s, code, [f"h{index}"]) for index, (s, code) in enumerate(statuses)]
    merged = merge_results(results, Path("/wave"))
    assert (merged.status, merged.rc, merged.directory) == (status, rc, Path("/wave"))


def test_merging_keeps_every_host_and_stat() -> None:
    merged = merge_results([_result("successful", 0, ["a", "b"]), _result("failed", 2, ["c"], failed=("c",))],
                           Path("/wave"))
    assert sorted(merged.hosts) == ["a", "b", "c"]
    assert merged.stats["ok"] == {"a": 3, "b": 3, "c": 3}
    assert merged.failed_hosts == ["c"]


def test_a_shard_whose_executor_died_gives_the_merged_run_its_reason() -> None:
    died = _result("failed", 1, ["c"])
    died.reason = "executor lab-executor (10.213.0.250) stopped before the run ended"
    merged = merge_results([_result("successful", 0, ["a"]), died], Path("/wave"))
    assert merged.reason == died.reason and merged.status == "failed"
    assert merge_results([_result("successful", 0, ["a"])], Path("/wave")).reason is None


# --- a round trip through run_playbook -------------------------------------------------------

FAILING = "c02-r01-n04"


class FakeAnsible:
    """ansible_runner.run replaced: each host of the limit file plays the same events
    whichever job it is in; one host fails. Records each job's hosts, directory and thread."""

    def __init__(self, until_canceled: bool = False):
        self.jobs: list[dict[str, Any]] = []
        self.until_canceled = until_canceled  # each job then runs until it is canceled
        self._lock = threading.Lock()

    def run(self, **kwargs: Any) -> SimpleNamespace:
        hosts = Path(kwargs["limit"].removeprefix("@")).read_text().split()
        with self._lock:
            self.jobs.append({"hosts": hosts, "directory": Path(kwargs["private_data_dir"]),
                              "thread": threading.current_thread().name})
        handler, cancel = kwargs["event_handler"], kwargs["cancel_callback"]
        stats: dict[str, dict[str, int]] = {"ok": {}, "changed": {}, "failures": {}, "dark": {}}
        for host in hosts:
            for task in ("Gathering Facts", "Install the pinned packages", "Say that this node ran every role"):
                handler(_event("runner_on_start", host, task))
                if host == FAILING and task.startswith("Install"):
                    handler(_event("runner_on_failed", host, task, {"msg": "no such package"}))
                    stats["failures"][host] = 1
                    break
                handler(_event("runner_on_ok", host, task, {"changed": task.startswith("Install")}))
                stats["ok"][host] = stats["ok"].get(host, 0) + 1
        if self.until_canceled:
            while not cancel():
                time.sleep(0.01)
            return SimpleNamespace(rc=254, status="canceled", stats=stats)
        failed = bool(stats["failures"])
        return SimpleNamespace(rc=2 if failed else 0, status="failed" if failed else "successful", stats=stats)


def _event(kind: str, host: str, task: str, res: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"event": kind, "created": "2026-12-02T16:00:00.000000",
            "event_data": {"host": host, "task": task, "res": res or {}}}


def _request(directory: Path) -> PlaybookRun:
    return PlaybookRun(site_name="lab", site_file=Path("site.yaml"), playbook="bootstrap.yml",
                       hosts=list(HOSTS), serial=len(HOSTS), max_fail_percentage=100, directory=directory)


def test_a_sharded_run_gives_the_one_job_s_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeAnsible()
    monkeypatch.setattr(ansible_runner, "run", fake.run)
    one = run_playbook(_request(tmp_path / "one"), lambda progress: None)
    updates: list[tuple[str, str]] = []

    def on_update(progress: HostProgress) -> None:
        updates.append((progress.name, threading.current_thread().name))

    sharded = run_sharded(_request(tmp_path / "wave"), 3, on_update, threading.Event(), together=SERVERS)

    assert sharded.summary() == one.summary()
    assert sharded.stats == one.stats and sharded.failed_hosts == [FAILING]
    assert (sharded.status, sharded.rc) == (one.status, one.rc) == ("failed", 2)
    assert {name: h.changes for name, h in sharded.hosts.items()} == {name: h.changes for name, h in one.hosts.items()}
    jobs = fake.jobs[1:]
    assert len(jobs) == 3
    assert sorted(job["directory"] for job in jobs) == [tmp_path / "wave" / f"shard-{k}" for k in (1, 2, 3)]
    assert set(SERVERS) <= set(next(j for j in jobs if j["directory"].name == "shard-1")["hosts"])
    assert sorted(h for job in jobs for h in job["hosts"]) == sorted(HOSTS)
    assert len({job["thread"] for job in jobs}) == 3  # at once, one thread each
    assert {thread for _, thread in updates} == {job["thread"] for job in jobs}
    assert (tmp_path / "wave" / "summary.json").is_file()  # the merged summary, where one job's would be


def test_one_shard_is_run_playbook_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeAnsible()
    monkeypatch.setattr(ansible_runner, "run", fake.run)
    result = run_sharded(_request(tmp_path / "wave"), 1, lambda progress: None)
    assert [job["directory"] for job in fake.jobs] == [tmp_path / "wave"]  # no shard-1 directory
    assert result.directory == tmp_path / "wave"


def test_cancel_stops_every_shard_and_the_run_reads_canceled(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeAnsible(until_canceled=True)
    monkeypatch.setattr(ansible_runner, "run", fake.run)
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    started = time.monotonic()
    result = run_sharded(_request(tmp_path / "wave"), 3, lambda progress: None, cancel)
    assert time.monotonic() - started < 5
    assert len(fake.jobs) == 3
    assert (result.status, result.rc) == ("canceled", 254)
    assert sorted(result.hosts) == sorted(HOSTS)  # what they reported until then is kept


def test_a_shard_that_raises_stops_the_others_and_its_error_is_raised(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeAnsible(until_canceled=True)

    def run(**kwargs: Any) -> SimpleNamespace:
        if kwargs["private_data_dir"].endswith("shard-2"):
            raise RuntimeError("ansible-runner: the event stream broke")
        return fake.run(**kwargs)

    monkeypatch.setattr(ansible_runner, "run", run)
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="event stream broke"):
        run_sharded(_request(tmp_path / "wave"), 3, lambda progress: None, threading.Event())
    assert time.monotonic() - started < 5  # the other two were stopped, not left holding
    assert len(fake.jobs) == 2


# --- one display for every shard ------------------------------------------------------------


class SlowConsole:
    """A console that takes its time to print, and notes how many threads print at once."""

    is_terminal = False

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.inside = 0
        self.most_inside = 0

    def print(self, text: str, **_: Any) -> None:
        self.inside += 1
        self.most_inside = max(self.most_inside, self.inside)
        time.sleep(0.02)
        self.lines.append(text)
        self.inside -= 1


def test_the_progress_view_takes_updates_from_several_threads_one_at_a_time() -> None:
    console = SlowConsole()
    view = ProgressView(console, live=False)
    start = threading.Barrier(8)

    def report_failures(shard: int) -> None:
        start.wait()
        for n in range(5):
            progress = HostProgress(f"s{shard}-n{n}", failure="Install: no such package")
            progress.counts["failed"] = 1
            view.update(progress)

    threads = [threading.Thread(target=report_failures, args=(shard,)) for shard in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert console.most_inside == 1
    assert len(view.hosts) == 40 and len(console.lines) == 40  # every failure said once


# --- a real one: ansible-runner in threads --------------------------------------------------

CONTROLLER_PLAY = """\
- name: Run on the controller for every host, reaching none
  hosts: all
  connection: local
  gather_facts: false
  tasks:
    - name: Say hello
      ansible.builtin.debug:
        msg: "hello {{ inventory_hostname }}"
      changed_when: inventory_hostname.endswith('1')
    - name: Fail one host
      ansible.builtin.fail:
        msg: this one fails
      when: inventory_hostname == 'c02-r01-n02'
"""


@pytest.mark.slow
def test_a_real_sharded_run_gives_each_host_what_its_play_says(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from ecohash.ansible import runner
    from ecohash.paths import project_root

    monkeypatch.setenv("ECOHASH_STATE_DIR", str(tmp_path / "state"))
    playbook = tmp_path / "controller.yml"
    playbook.write_text(CONTROLLER_PLAY)
    monkeypatch.setattr(runner, "check_playbook", lambda name: playbook)
    hosts = ["c01-cp-n01", "c01-r01-n01", "c02-r01-n01", "c02-r01-n02"]
    request = PlaybookRun(site_name="nd-williston", site_file=project_root() / "inventories/nd-williston/site.yaml",
                          playbook="controller.yml", hosts=hosts, directory=tmp_path / "wave")

    result = run_sharded(request, 2, lambda progress: None, threading.Event(), together=["c01-cp-n01"])

    assert (result.status, result.rc, result.failed_hosts) == ("failed", 2, ["c02-r01-n02"])
    counts = {name: (h.counts["ok"], h.counts["changed"], h.counts["failed"]) for name, h in result.hosts.items()}
    assert counts == {"c01-cp-n01": (1, 1, 0), "c01-r01-n01": (1, 1, 0), "c02-r01-n01": (1, 1, 0),
                      "c02-r01-n02": (1, 0, 1)}
    assert result.hosts["c02-r01-n02"].failure == "Fail one host: this one fails"
    assert result.stats["changed"] == dict.fromkeys(hosts[:3], 1)
    limits = [(tmp_path / "wave" / f"shard-{k}" / "hosts.limit").read_text().split() for k in (1, 2)]
    assert limits == [hosts[:2], hosts[2:]]
    assert all((tmp_path / "wave" / f"shard-{k}" / "artifacts").is_dir() for k in (1, 2))
