"""Running the repository's playbooks against a site through ansible-runner.

Each run gets a fresh private data directory under the state directory
(runs/<site>/<time>-<playbook>): ansible-runner silently reuses extra vars and
environment it finds in an old one, and a run's artifacts (events, stdout, the
summary) stay there for later reading. Nothing secret is passed in: the k3s join
token is read on the controller by the k8s_node role, in tasks that are no_log.
"""

from __future__ import annotations

import difflib
import json
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ecohash.ansible.inventory import inventory_for
from ecohash.ansible.remote import Executor, Job, run_on_executor
from ecohash.errors import InvalidInputError
from ecohash.inventory.loader import load_site
from ecohash.paths import collections_dir, facts_dir, project_root, runs_dir

# Events that end one task on one host, and what each says about the host.
HOST_RESULTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_unreachable": "unreachable",
    "runner_on_skipped": "skipped",
}


# What playbooks/report.yml says when it fails a node: its task, and the reason given
# for a node that never answered (the other reason is "failed acceptance: ...").
REPORT_TASK = "Say why this node is not standard: "
UNANSWERED = "did not answer over SSH"
# The last task of playbooks/node.yml's play. A host that reports it ran every role of the
# play: the only proof of that, since a playbook that Ansible ends early (a Kubernetes
# server failing in its serial play) leaves the other hosts with a few ok events and no error.
NODE_RAN_TASK = "Say that this node ran every role"


@dataclass(frozen=True)
class TaskChange:
    """A task that changed (or, in check mode, would change) a host, with Ansible's diff."""

    role: str | None
    task: str
    action: str
    path: str | None  # the file it concerns, where the module names one
    diff: str | None  # unified diff or the module's own text; None when Ansible gave none

    def as_dict(self) -> dict[str, Any]:
        return {"role": self.role, "task": self.task, "action": self.action, "path": self.path,
                "diff": self.diff}


@dataclass
class HostProgress:
    """What one host has done so far in the run."""

    name: str
    task: str = ""
    counts: Counter[str] = field(default_factory=Counter)
    failure: str | None = None
    health: dict[str, Any] | None = None
    changes: list[TaskChange] = field(default_factory=list)
    ran_node_play: bool = False  # reached the node play's last task (NODE_RAN_TASK)
    first_event: datetime | None = None
    last_event: datetime | None = None

    @property
    def duration_s(self) -> float | None:
        """From the host's first task to its last, as ansible-runner's events timed them."""
        if self.first_event is None or self.last_event is None:
            return None
        return round((self.last_event - self.first_event).total_seconds(), 1)

    @property
    def state(self) -> str:
        if self.counts["unreachable"]:
            return "unreachable"
        if self.counts["failed"]:
            return "failed"
        return "running" if self.task else "waiting"


@dataclass
class PlaybookRun:
    """One ansible-playbook run's request."""

    site_name: str
    site_file: Path
    playbook: str  # file name under playbooks/
    limit: str | None = None
    check: bool = False
    serial: int | str | None = None  # hosts, or a percentage such as "10%"
    max_fail_percentage: int | None = None
    # Exactly these hosts (instead of, or within, `limit`); a rollout's wave.
    hosts: list[str] | None = None
    # Where the run's artifacts go: a new, empty directory; default: a fresh one under runs/.
    directory: Path | None = None
    # Where ansible-playbook runs: the site's executor (ecohash.ansible.remote), or here.
    executor: Executor | None = None

    def cmdline(self) -> str | None:
        return "--check --diff" if self.check else None

    def extravars(self) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.serial is not None:
            extra["ecohash_serial"] = self.serial
        if self.max_fail_percentage is not None:
            extra["ecohash_max_fail_percentage"] = self.max_fail_percentage
        return extra


@dataclass
class RunResult:
    rc: int
    status: str
    directory: Path
    hosts: dict[str, HostProgress]
    stats: dict[str, dict[str, int]]
    # Why the run itself failed when no host's events can say it (an executor that died).
    reason: str | None = None

    @property
    def failed_hosts(self) -> list[str]:
        failed = set(self.stats.get("failures", {})) | set(self.stats.get("dark", {}))
        return sorted(failed)

    def summary(self) -> dict[str, Any]:
        hosts = {}
        for name in sorted(self.hosts):
            progress = self.hosts[name]
            hosts[name] = {
                "ok": progress.counts["ok"],
                "changed": progress.counts["changed"],
                "failed": progress.counts["failed"],
                "unreachable": progress.counts["unreachable"],
                "skipped": progress.counts["skipped"],
                "failure": progress.failure,
                "ran_node_play": progress.ran_node_play,
                "health": progress.health,
            }
        return {"rc": self.rc, "status": self.status, "reason": self.reason,
                "failed_hosts": self.failed_hosts, "hosts": hosts}


def check_playbook(name: str) -> Path:
    path = project_root() / "playbooks" / name
    if not path.is_file():
        raise InvalidInputError(f"no playbook {name} in {path.parent}")
    return path


def new_run_directory(site_name: str, playbook: str) -> Path:
    """A fresh directory for one run; never an old one, whose env/ ansible-runner would reuse."""
    runs = runs_dir(site_name)
    runs.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    base = f"{stamp}-{Path(playbook).stem}"
    for attempt in range(1000):
        candidate = runs / (base if attempt == 0 else f"{base}.{attempt}")
        try:
            candidate.mkdir(mode=0o700)
        except FileExistsError:
            continue
        return candidate
    raise InvalidInputError(f"cannot make a new run directory under {runs}")


def run_playbook(request: PlaybookRun, on_update: Callable[[HostProgress], None],
                 cancel: threading.Event | None = None) -> RunResult:
    """Run the playbook; call `on_update` whenever a host's progress changes.

    Setting `cancel` stops ansible-playbook (ansible-runner terminates it) and the run
    ends with status "canceled"; whatever the hosts reported until then is in the result.
    With an executor, ansible-playbook runs there and its events are handled here alike.
    """
    playbook = check_playbook(request.playbook)
    directory = request.directory or new_run_directory(request.site_name, request.playbook)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    hosts: dict[str, HostProgress] = {}
    limit = request.limit
    if request.hosts is not None:
        # A file rather than the command line: a wave can be thousands of names.
        limit_file = directory / "hosts.limit"
        limit_file.write_text("".join(f"{name}\n" for name in request.hosts))
        limit = f"@{limit_file}" if request.limit is None else f"@{limit_file}:&{request.limit}"

    def handle(event: dict[str, Any]) -> bool:
        data = event.get("event_data", {})
        host = data.get("host")
        if not host:
            return True
        progress = hosts.setdefault(host, HostProgress(host))
        created = _timestamp(event.get("created"))
        if created is not None:
            progress.first_event = progress.first_event or created
            progress.last_event = created
        kind = event.get("event", "")
        if kind == "runner_on_start":
            progress.task = data.get("task", "")
        elif kind in HOST_RESULTS:
            result = data.get("res", {}) or {}
            outcome = HOST_RESULTS[kind]
            if outcome == "failed" and data.get("ignore_errors"):
                outcome = "ignored"
            progress.counts[outcome] += 1
            if outcome == "ok" and result.get("changed"):
                progress.counts["changed"] += 1
                progress.changes.append(task_change(data, result))
            if outcome == "ok" and data.get("task") == NODE_RAN_TASK:
                progress.ran_node_play = True
            if outcome in ("failed", "unreachable"):
                progress.failure = f"{data.get('task', '')}: {_message(result)}"
            if isinstance(result.get("verdict"), dict):
                progress.health = result["verdict"]
        on_update(progress)
        return True  # keep every event in the artifacts

    if request.executor is not None:
        result = _run_on_executor(request, request.executor, directory, handle, cancel)
    else:
        result = _run_here(request, playbook, directory, handle, cancel, limit)
    result.hosts = hosts
    (directory / "summary.json").write_text(json.dumps(result.summary(), indent=2) + "\n")
    return result


def _run_here(request: PlaybookRun, playbook: Path, directory: Path, handle: Callable[[dict[str, Any]], bool],
              cancel: threading.Event | None, limit: str | None) -> RunResult:
    import ansible_runner

    environment = {
        # This repository's settings whatever the working directory, and the Ansible that
        # was installed with ecohash (its inventory plugin imports ecohash).
        "ANSIBLE_CONFIG": str(project_root() / "ansible.cfg"),
        # ansible.cfg's collections/ is a checkout's; a wheel keeps the collection elsewhere.
        # Named here, it is also the only path: no collection a user's environment names
        # stands in for ecohash's own.
        "ANSIBLE_COLLECTIONS_PATH": str(collections_dir()),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        **fact_cache_environment(facts_dir(request.site_name)),
        "ANSIBLE_FORCE_COLOR": "0",
        # ansible-runner turns host key checking off unless told otherwise: a node that
        # answers with a key other than the known one must be refused.
        "ANSIBLE_HOST_KEY_CHECKING": "True",
    }
    runner = ansible_runner.run(
        private_data_dir=str(directory),
        playbook=str(playbook),
        inventory=str(request.site_file.resolve()),
        limit=limit,
        cmdline=request.cmdline(),
        extravars=request.extravars() or None,
        envvars=environment,
        event_handler=handle,
        cancel_callback=(lambda: cancel.is_set()) if cancel is not None else None,
        # ansible-runner's own jsonfile cache would replace the site's cache directory in
        # the environment with a new one inside each run's artifacts: no run would ever
        # see the facts of the last. The cache is ours (fact_cache_environment).
        fact_cache_type="site",
        quiet=True,
    )
    return RunResult(rc=runner.rc if runner.rc is not None else 1, status=runner.status,
                     directory=directory, hosts={}, stats=runner.stats or {})


def _run_on_executor(request: PlaybookRun, executor: Executor, directory: Path,
                     handle: Callable[[dict[str, Any]], bool], cancel: threading.Event | None) -> RunResult:
    site = load_site(request.site_file)
    job = Job(playbook=request.playbook, limit_hosts=request.hosts, limit=request.limit,
              cmdline=request.cmdline(), extravars=request.extravars())
    ran = run_on_executor(executor, site, inventory_for(site), job, directory, handle, cancel)
    return RunResult(rc=ran.rc, status=ran.status, directory=directory, hosts={}, stats=ran.stats,
                     reason=ran.reason)


def fact_cache_environment(directory: Path) -> dict[str, str]:
    """Facts kept between runs in `directory` (one per site: node names repeat across
    sites); for an hour, so a re-run skips gathering but a rebooted node is soon seen afresh."""
    return {
        "ANSIBLE_CACHE_PLUGIN": "jsonfile",
        "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(directory),
        "ANSIBLE_CACHE_PLUGIN_TIMEOUT": "3600",
    }


def task_change(data: dict[str, Any], result: dict[str, Any]) -> TaskChange:
    # A loop's diffs are in its items' results. A no_log task's result is censored: no diff.
    items = [result, *[r for r in result.get("results", []) if isinstance(r, dict)]]
    diffs = [d for item in items for d in _as_list(item.get("diff"))]
    path = next((str(item[key]) for item in items for key in ("dest", "path") if item.get(key)), None)
    if path is None:
        # before_header is the file on the host; after_header may be a template's temp copy.
        path = next((d.get("before_header") or d.get("after_header") for d in diffs
                     if isinstance(d, dict) and (d.get("before_header") or d.get("after_header"))), None)
    texts = [text for text in map(diff_text, diffs) if text]
    return TaskChange(role=data.get("role"), task=data.get("task", ""), action=data.get("task_action", ""),
                      path=path, diff="".join(texts) or None)


def _as_list(value: Any) -> list[Any]:
    if not value:
        return []
    return value if isinstance(value, list) else [value]


def diff_text(diff: Any) -> str:
    """One of Ansible's diff results as text: a unified diff of contents, or changed attributes."""
    if not isinstance(diff, dict):
        return ""
    if diff.get("prepared"):
        return str(diff["prepared"]).rstrip("\n") + "\n"
    before, after = diff.get("before", ""), diff.get("after", "")
    if isinstance(before, dict) or isinstance(after, dict):
        before = before if isinstance(before, dict) else {}
        after = after if isinstance(after, dict) else {}
        return "".join(f"{key}: {before.get(key)} -> {after.get(key)}\n"
                       for key in sorted(set(before) | set(after))
                       if key != "path" and before.get(key) != after.get(key))
    if before == after:
        return ""
    return "".join(difflib.unified_diff(
        str(before).splitlines(keepends=True), str(after).splitlines(keepends=True),
        fromfile=f"{diff.get('before_header') or 'before'} (on the host)",
        tofile=f"{diff.get('before_header') or diff.get('after_header') or 'after'} (the standard)"))


def _timestamp(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None


def _message(result: dict[str, Any]) -> str:
    message = result.get("msg") or result.get("stderr") or result.get("reason") or "failed"
    return str(message).strip().splitlines()[0][:300] if str(message).strip() else "failed"
