#!/usr/bin/env python3
"""The controller's CPU per node: `ecohash provision lab`, first run and idempotent re-run.

Each measured run is the real CLI (`python -m ecohash provision lab --json`, with --force
for a re-run) started inside a cgroup v2 group of its own, so that what the group's
cpu.stat counts is the controller's whole process tree and nothing else: ecohash itself
(preflight, ansible-runner's event handling, verification), every ansible-playbook
process and its forked workers, the ssh clients and their ControlPersist masters. The lab
hosts run in their own groups (cli/ecohash/lab/cgroups.py), so the nodes' side of the
work is not counted. Each run gets its own SSH control directory, and the masters still
waiting in the group when the CLI exits are ended before cpu.stat is read: no run reuses
another's connections, and each pays for its own.

While a run lasts, /proc is sampled every 0.1 s for the main ansible-playbook process of
each wave (the one whose parent is not ansible-playbook; its forks are the workers): its
own utime+stime, without its children, is the work of Ansible's one thread of strategy,
variables and result handling. Its CPU-seconds per node give the ceiling of one ansible
process in nodes per second. Sampling misses at most the last 0.1 s of each process.

From each re-run's events (wave-*/artifacts/*/job_events) the bench counts, per node and
role, the tasks that ran and the tasks that were skipped: each is one worker fork on the
controller, and each task that ran on the node one or more module runs over SSH.

--tree runs the CLI, roles and playbooks of another checkout (e.g. /work/main for today's
roles) with the same Python environment; trees alternate run by run, and the last line
compares the re-runs of the second tree given with the first's. The first run (on fresh
lab hosts, `ecohash lab up`) uses the tree --first-on names. Needs root, like the lab; replaces
any running lab. Usage:

    sudo .venv/bin/python bench/controller_cpu.py [--tree BEFORE --tree AFTER [--first-on 1]]
                                                  [--reruns 3] [--no-first]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CGROUP_V2 = next((path for path in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified"))
                  if (path / "cgroup.controllers").exists()), None)
RESULTS = ("runner_on_ok", "runner_on_failed", "runner_on_unreachable")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SAMPLE_S = 0.1


@dataclass
class Run:
    tree: str
    kind: str  # "first" or "re-run"
    nodes: int
    wall_s: float
    cpu_s: float
    user_s: float
    system_s: float
    main_s: float  # the main ansible-playbook processes' own CPU, summed over waves
    workers_s: float  # their workers' and the workers' ssh clients' (reaped children)
    # node -> (role, "ran", "changed" or "skipped") -> tasks
    tasks: dict[str, collections.Counter[tuple[str, str]]] = field(default_factory=dict)

    @property
    def per_node(self) -> float:
        return self.cpu_s / self.nodes

    @property
    def main_per_node(self) -> float:
        return self.main_s / self.nodes


def ticks(pid: int) -> tuple[int, int, int] | None:
    """(parent pid, own utime+stime, reaped children's) of a process in clock ticks; None once gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
    return int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])


def is_ansible_playbook(pid: int) -> bool:
    try:
        return b"ansible-playbook" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def group_pids(group: Path) -> list[int]:
    try:
        return [int(pid) for pid in (group / "cgroup.procs").read_text().split()]
    except OSError:
        return []


def cpu_stat(group: Path) -> dict[str, int]:
    return {key: int(value) for key, value in
            (line.split() for line in (group / "cpu.stat").read_text().splitlines())}


def controller(tree: Path, arguments: list[str], work: Path
               ) -> tuple[float, dict[str, int], tuple[float, float], dict[str, Any]]:
    """Run the tree's CLI in a new cgroup.

    Returns wall seconds, the group's cpu.stat, the main ansible-playbook processes' own CPU
    seconds and their reaped children's (the workers with the ssh clients they started), and
    the CLI's JSON report.
    """
    assert CGROUP_V2 is not None
    group = CGROUP_V2 / "ecohash-bench" / f"controller-{os.getpid()}-{time.monotonic_ns()}"
    group.mkdir(parents=True)
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree / "cli"), str(tree)]),
                   # Connections of this run only, ended with it (see the module's docstring).
                   "ANSIBLE_SSH_CONTROL_PATH_DIR": str(work / "cp")}
    command = [sys.executable, "-m", "ecohash", *arguments, "--json"]
    main_ticks: dict[int, tuple[int, int]] = {}  # pid -> (own, children) at its last sample
    started = time.perf_counter()
    stdout, stderr = work / "stdout", work / "stderr"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        enter = f'echo $$ > {group}/cgroup.procs && exec "$@"'
        process = subprocess.Popen(["sh", "-c", enter, "sh", *command], cwd=tree, env=environment,
                                   stdout=out, stderr=err)
    while process.poll() is None:
        for pid in group_pids(group):
            seen = ticks(pid)
            if seen is None or not is_ansible_playbook(pid):
                continue
            parent, own, children = seen
            if not is_ansible_playbook(parent):
                main_ticks[pid] = (own, children)
        time.sleep(SAMPLE_S)
    wall = time.perf_counter() - started
    # What is left in the group are the ssh masters this run started: end them, then count.
    for _ in range(50):
        left = group_pids(group)
        if not left:
            break
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        time.sleep(0.1)
    stat = cpu_stat(group)
    group.rmdir()
    if process.returncode != 0:
        sys.exit(f"{' '.join(arguments)} in {tree} failed (exit {process.returncode}):\n"
                 f"{stdout.read_text()[-3000:]}\n{stderr.read_text()[-3000:]}")
    ansible = tuple(sum(sample[i] for sample in main_ticks.values()) / CLOCK_TICKS for i in (0, 1))
    return wall, stat, (ansible[0], ansible[1]), json.loads(stdout.read_text())


def task_counts(directory: Path) -> dict[str, collections.Counter[tuple[str, str]]]:
    """Per node: tasks that ran, changed and were skipped, by role, from the run's events."""
    counts: dict[str, collections.Counter[tuple[str, str]]] = collections.defaultdict(collections.Counter)
    for path in directory.glob("wave-*/artifacts/*/job_events/*.json"):
        event = json.loads(path.read_text())
        data = event.get("event_data", {})
        if not data.get("host"):
            continue
        role = data.get("role") or "(playbook)"
        if event.get("event") in RESULTS:
            counts[data["host"]][(role, "ran")] += 1
            if (data.get("res") or {}).get("changed"):
                counts[data["host"]][(role, "changed")] += 1
        elif event.get("event") == "runner_on_skipped":
            counts[data["host"]][(role, "skipped")] += 1
    return dict(counts)


def provision(tree: Path, kind: str) -> Run:
    arguments = ["provision", "lab"] + (["--force"] if kind == "re-run" else [])
    with tempfile.TemporaryDirectory(prefix="ecb-") as work:
        wall, stat, (main_s, workers_s), report = controller(tree, arguments, Path(work))
    nodes = report["totals"]["passed"]
    if report["outcome"] != "completed" or nodes == 0 or report["totals"]["failed"]:
        sys.exit(f"provision in {tree} did not pass every node: {report['outcome']}: {report['message']}")
    return Run(tree=label(tree), kind=kind, nodes=nodes, wall_s=wall, cpu_s=stat["usage_usec"] / 1e6,
               user_s=stat["user_usec"] / 1e6, system_s=stat["system_usec"] / 1e6, main_s=main_s,
               workers_s=workers_s, tasks=task_counts(Path(report["directory"])))


def lab_up(tree: Path, executor: bool) -> None:
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree / "cli"), str(tree)])}
    subprocess.run([sys.executable, "-m", "ecohash", "lab", "up", *(["--executor"] if executor else [])],
                   check=True, capture_output=True, text=True, cwd=tree, env=environment)


def label(tree: Path) -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=tree)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                           text=True, cwd=tree).stdout.strip()
    return f"{tree.name}@{commit.stdout.strip() or '?'}{'+' if dirty else ''}"


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown CPU")
    version = subprocess.run([str(Path(sys.executable).parent / "ansible"), "--version"],
                             capture_output=True, text=True).stdout.split("\n")[0]
    return (f"{cpu}, {os.cpu_count()} CPUs shared with the lab hosts and other work; {version}; "
            f"Python {sys.version.split()[0]}")


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} (min {min(values):.2f}, max {max(values):.2f}, n={len(values)})"


def report(runs: list[Run], trees: list[str]) -> None:
    """Every figure per tree and kind; the verdict compares the second of `trees` with the first."""
    print()
    for (tree, kind) in dict.fromkeys((run.tree, run.kind) for run in runs):
        chosen = [run for run in runs if run.tree == tree and run.kind == kind]
        main = [run.main_per_node for run in chosen]
        # Through a site-local executor no ansible-playbook runs here: no ceiling to give.
        ceiling = (f"ceiling {1 / statistics.median(main):.2f} nodes/s per ansible process"
                   if statistics.median(main) else "no ansible-playbook on the controller")
        print(f"{tree} {kind}, {chosen[0].nodes} nodes:\n"
              f"  controller CPU-s per node {spread([run.per_node for run in chosen])}\n"
              f"  of which ansible-playbook's workers and their ssh clients "
              f"{spread([run.workers_s / run.nodes for run in chosen])}\n"
              f"  of which the main ansible-playbook process {spread(main)}, "
              f"{statistics.median(run.main_s / run.cpu_s for run in chosen):.0%} of the tree: {ceiling}\n"
              f"  the rest (ecohash: preflight, events, verification; ssh masters) "
              f"{spread([(run.cpu_s - run.main_s - run.workers_s) / run.nodes for run in chosen])}\n"
              f"  wall s {spread([run.wall_s for run in chosen])}")
    for tree in dict.fromkeys(run.tree for run in runs):
        last = next((run for run in reversed(runs) if run.tree == tree and run.kind == "re-run"), None)
        if last is None:
            continue
        print(f"{tree} re-run, tasks per node that ran / were skipped, by role:")
        for node in sorted(last.tasks):
            counts = last.tasks[node]
            roles = sorted({role for role, _ in counts})
            ran, skipped, changed = (sum(n for (_, k), n in counts.items() if k == outcome)
                                     for outcome in ("ran", "skipped", "changed"))
            by_role = ", ".join(f"{role} {counts[(role, 'ran')]}/{counts[(role, 'skipped')]}"
                                for role in roles)
            print(f"  {node}: {ran} ran ({changed} changed), {skipped} skipped: {by_role}")
    if len(trees) == 2:
        before, after = ([run.per_node for run in runs if run.tree == tree and run.kind == "re-run"]
                         for tree in trees)
        if before and after:
            ratio = statistics.median(after) / statistics.median(before)
            verdict = "PASS" if ratio <= 0.5 else "FAIL"
            print(f"{verdict}: re-run controller CPU per node {trees[1]} / {trees[0]} = {ratio:.2f} "
                  "(target <= 0.50)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", type=Path,
                        help="checkout whose CLI and roles run (repeat to compare; default this one)")
    parser.add_argument("--first-on", type=int, default=0, metavar="INDEX",
                        help="which --tree (0 for the first given) makes the first run (default 0)")
    parser.add_argument("--reruns", type=int, default=3, help="idempotent re-runs per tree (default 3)")
    parser.add_argument("--no-first", action="store_true",
                        help="no lab up and no first run: re-runs on the lab as it is (provisioned)")
    parser.add_argument("--executor", action="store_true",
                        help="lab up --executor: every wave runs on the lab's site-local executor")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("the lab needs root: sudo .venv/bin/python bench/controller_cpu.py")
    if CGROUP_V2 is None:
        sys.exit("no cgroup v2 hierarchy under /sys/fs/cgroup: cannot count the controller's tree apart")
    trees = [tree.resolve() for tree in (args.tree or [ROOT])]
    print(f"machine: {machine()}", flush=True)
    runs = []
    if not args.no_first:
        lab_up(trees[args.first_on], args.executor)
        runs.append(provision(trees[args.first_on], "first"))
        print(f"{runs[-1].tree} first: {runs[-1].per_node:.2f} CPU-s per node", flush=True)
    for index in range(args.reruns):
        for tree in trees if index % 2 == 0 else reversed(trees):
            runs.append(provision(tree, "re-run"))
            run = runs[-1]
            print(f"{run.tree} re-run {index + 1}: {run.per_node:.2f} CPU-s per node (workers "
                  f"{run.workers_s / run.nodes:.2f}, main {run.main_per_node:.2f}), wall {run.wall_s:.1f} s",
                  flush=True)
    report(runs, [label(tree) for tree in trees])


if __name__ == "__main__":
    main()
