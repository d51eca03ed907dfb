"""What the site inventory costs Ansible at 1,000 and 10,000 nodes.

A benchmark, not a test: it prints figures and checks them against targets.

    .venv/bin/python bench/inventory_scaling.py [--sizes 1000,10000] [--repeat 3] [--out FILE]

For each size it generates a site (bench/sites.py) and measures, each run in a fresh
child started by plan_scaling's bare launcher (wall time, the child's own peak RSS and
CPU time; see bench/plan_scaling.py's docstring for why):

- plugin --export cold: `ansible-inventory -i SITE --list --export` through the
  ecohash_site plugin, what AWX runs to import an inventory source, with no cached
  inventory (the cache directory removed before each run: the site is loaded and planned);
- plugin --export: the same with the inventory cached by the run before (every later
  run of an unchanged site, ecohash.ansible.inventory_cache);
- static --export: the same command on a static YAML inventory of the same hosts, groups
  and variables, written from the plugin's own `--list --export` output and checked to
  list back exactly the same (the floor: Ansible's own cost for this much data);
- plugin --list: without --export Ansible merges every group's variables into every host
  and prints them all; once per size (it is the slow one, and no target);
- first task: `ansible-playbook -i SITE playbooks/bootstrap.yml --limit NODE` from its
  start to its first TASK banner, when it is stopped (the node's address answers no one
  in a generated site; the play would only wait for it). Peak memory is the playbook's
  main process up to then.

Targets at 10,000 nodes: plugin --export (cached) at most 1.5× the static inventory's
and under 3 s; the first task under 5 s; the cold export and peak memory reported.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# bench/ is not a package: run as a script, this directory is on sys.path already.
from plan_scaling import (
    ANSIBLE_INVENTORY,
    PYTHON,
    ROOT,
    VENV_BIN,
    ChildFailed,
    Sample,
    child_env,
    machine,
    measure,
    progress,
    table,
)
from sites import containers_for, write_sites

ANSIBLE_PLAYBOOK = str(VENV_BIN / "ansible-playbook")
PLAYBOOK = "playbooks/bootstrap.yml"
DEFAULT_SIZES = "1000,10000"
TARGET_SIZE = 10_000
EXPORT_LIMIT_S = 3.0
EXPORT_STATIC_RATIO = 1.5
FIRST_TASK_LIMIT_S = 5.0

PLUGIN_COLD, PLUGIN_EXPORT, STATIC_EXPORT, PLUGIN_LIST, FIRST_TASK = (
    "plugin --export cold", "plugin --export", "static --export", "plugin --list", "first task")
MEASURES = (PLUGIN_COLD, PLUGIN_EXPORT, STATIC_EXPORT, PLUGIN_LIST, FIRST_TASK)

# Starts ansible-playbook in a session of its own, reads its stdout to the first TASK
# banner, then kills the session (the play's workers too) and reports like plan_scaling's
# launcher: seconds to the banner, peak RSS, exit status 0 when a banner came, CPU time.
FIRST_TASK_LAUNCHER = """
import os, signal, sys, time
report = int(sys.argv[1])
os.set_inheritable(report, False)
read_end, write_end = os.pipe()
start = time.perf_counter()
pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ, setsid=True,
                     file_actions=[(os.POSIX_SPAWN_DUP2, write_end, 1), (os.POSIX_SPAWN_CLOSE, read_end)])
os.close(write_end)
first = None
with os.fdopen(read_end, "rb") as out:
    for line in out:
        if line.startswith(b"TASK ["):
            first = time.perf_counter() - start
            break
try:
    os.killpg(pid, signal.SIGKILL)
except ProcessLookupError:
    pass
_, status, usage = os.wait4(pid, 0)
cpu = usage.ru_utime + usage.ru_stime
os.write(report, f"{first or 0} {usage.ru_maxrss} {0 if first else 1} {cpu}".encode())
"""


@dataclass
class Runs:
    walls: list[float] = field(default_factory=list)
    peaks_kib: list[int] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.walls)

    @property
    def best(self) -> float:
        return min(self.walls)

    def add(self, sample: Sample) -> None:
        self.walls.append(sample.wall)
        self.peaks_kib.append(sample.peak_kib)
        self.cpus.append(sample.cpu)

    def cell(self) -> str:
        if not self.ok:
            return f"failed: {self.error}" if self.error else "not run"
        return f"{self.best:.2f} s, {max(self.peaks_kib) / 1024:.0f} MiB, cpu {min(self.cpus):.2f} s"


def plain(value: Any) -> Any:
    """ansible-core's JSON marks untrusted strings {"__ansible_unsafe": ...}; drop the marks."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def static_inventory(listed: dict[str, Any]) -> dict[str, Any]:
    """`ansible-inventory --list --export` output as a YAML inventory of the same data.

    Each host's own variables go where the host is first listed (a YAML inventory merges a
    host's entries), each group's variables on the group.
    """
    hostvars = listed["_meta"]["hostvars"]
    placed: set[str] = set()

    def group(name: str) -> dict[str, Any]:
        entry, out = listed.get(name, {}), {}
        if entry.get("vars"):
            out["vars"] = entry["vars"]
        if entry.get("hosts"):
            out["hosts"] = {host: None if host in placed else hostvars.get(host) or None
                            for host in entry["hosts"]}
            placed.update(entry["hosts"])
        if entry.get("children"):
            out["children"] = {child: group(child) for child in entry["children"]}
        return out

    return {"all": group("all")}


def write_static(site: Path, static: Path) -> None:
    """The static twin of the site's inventory, checked to list back exactly what the plugin lists.

    Run in a child (--write-static): the driver stays small, since a child started from a
    large process inherits its peak RSS (plan_scaling's docstring).
    """
    import yaml

    def listing(source: Path, env: dict[str, str]) -> Any:
        return plain(json.loads(subprocess.run([ANSIBLE_INVENTORY, "-i", str(source), "--list", "--export"],
                                               env=env, cwd=ROOT, capture_output=True, check=True).stdout))

    listed = listing(site, dict(os.environ))
    with static.open("w") as handle:
        yaml.dump(static_inventory(listed), handle, Dumper=yaml.CSafeDumper, sort_keys=False)
    if listing(static, static_env(dict(os.environ))) != listed:
        raise SystemExit(f"{static}: the static inventory does not list back what the plugin listed")


def static_env(env: dict[str, str]) -> dict[str, str]:
    # ansible.cfg enables only the site plugin and host lists; the static file needs yaml.
    return {**env, "ANSIBLE_INVENTORY_ENABLED": "yaml"}


def first_task(site: Path, node: str, env: dict[str, str]) -> Sample:
    argv = [ANSIBLE_PLAYBOOK, "-i", str(site), PLAYBOOK, "--limit", node]
    read_end, write_end = os.pipe()
    with tempfile.TemporaryFile() as errors, os.fdopen(read_end, "rb") as reported:
        launcher = subprocess.run(
            [PYTHON, "-S", "-I", "-c", FIRST_TASK_LAUNCHER, str(write_end), *argv], env=env, cwd=ROOT,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors, pass_fds=(write_end,),
            check=False)
        os.close(write_end)
        fields = reported.read().decode().split()
        if launcher.returncode != 0 or len(fields) != 4 or fields[2] != "0":
            errors.seek(0)
            raise ChildFailed(argv, "no TASK banner", errors.read().decode(errors="replace")[-2000:])
    return Sample(float(fields[0]), int(fields[1]), float(fields[3]), "")


def run_size(size: int, work: Path, repeat: int, env: dict[str, str]) -> dict[str, Runs]:
    [site] = write_sites(work / "sites", (size,))
    static = work / f"static-{size}.yml"
    progress(f"bench-{size}: writing and checking the static inventory")
    subprocess.run([PYTHON, __file__, "--write-static", str(site), str(static)], env=env, cwd=ROOT,
                   check=True)
    node = containers_for(size)[0].racks[-1].nodes[0][0]  # a GPU agent
    argv = {
        PLUGIN_COLD: ([ANSIBLE_INVENTORY, "-i", str(site), "--list", "--export"], env),
        PLUGIN_EXPORT: ([ANSIBLE_INVENTORY, "-i", str(site), "--list", "--export"], env),
        STATIC_EXPORT: ([ANSIBLE_INVENTORY, "-i", str(static), "--list", "--export"], static_env(env)),
        PLUGIN_LIST: ([ANSIBLE_INVENTORY, "-i", str(site), "--list"], env),
    }
    results: dict[str, Runs] = {}
    for name in MEASURES:
        runs = results[name] = Runs()
        for attempt in range(1 if name == PLUGIN_LIST else repeat):
            if name == PLUGIN_COLD:
                shutil.rmtree(Path(env["ECOHASH_STATE_DIR"]) / "cache", ignore_errors=True)
            try:
                sample = first_task(site, node, env) if name == FIRST_TASK else measure(*argv[name])
            except ChildFailed as failure:
                runs.error = failure.summary
                progress(f"bench-{size}: {name} FAILED: {failure}")
                break
            runs.add(sample)
            progress(f"bench-{size}: {name} {attempt + 1}: {sample.wall:.2f} s, cpu {sample.cpu:.2f} s, "
                     f"{sample.peak_kib / 1024:.0f} MiB")
    return results


def targets(results: dict[int, dict[str, Runs]]) -> list[tuple[bool | None, str]]:
    at = results.get(TARGET_SIZE)
    if at is None:
        return [(None, f"targets are for {TARGET_SIZE:,} nodes, which was not measured")]
    plugin, static, first = at[PLUGIN_EXPORT], at[STATIC_EXPORT], at[FIRST_TASK]
    out: list[tuple[bool | None, str]] = []
    if plugin.ok and static.ok:
        ratio = plugin.best / static.best
        out.append((ratio <= EXPORT_STATIC_RATIO, f"--list --export at {TARGET_SIZE:,} nodes: {ratio:.2f}× "
                    f"the static inventory's (target ≤ {EXPORT_STATIC_RATIO:g}×)"))
    if plugin.ok:
        out.append((plugin.best < EXPORT_LIMIT_S, f"--list --export at {TARGET_SIZE:,} nodes in "
                    f"{plugin.best:.2f} s (target < {EXPORT_LIMIT_S:g} s)"))
    if first.ok:
        out.append((first.best < FIRST_TASK_LIMIT_S, f"bootstrap --limit ONE_NODE to its first task in "
                    f"{first.best:.2f} s (target < {FIRST_TASK_LIMIT_S:g} s)"))
    out += [(False, f"{name} at {TARGET_SIZE:,} nodes: failed: {runs.error}")
            for name, runs in at.items() if not runs.ok]
    return out


def report(info: list[tuple[str, str]], results: dict[int, dict[str, Runs]], repeat: int) -> str:
    lines = [f"{key}: {value}" for key, value in info]
    lines += ["", f"best of {repeat} (plugin --list: one run); wall, peak RSS of the child, its CPU time", ""]
    lines.append(table(["nodes", *MEASURES],
                       [[f"{size:,}", *(runs[name].cell() for name in MEASURES)]
                        for size, runs in sorted(results.items())], markdown=False))
    lines.append("")
    lines += [f"{'n/a' if ok is None else 'PASS' if ok else 'FAIL'}: {text}" for ok, text in targets(results)]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help=f"node counts (default {DEFAULT_SIZES})")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (default 3)")
    parser.add_argument("--out", type=Path, metavar="FILE",
                        help="also write the report there (bench/results/inventory_scaling.txt)")
    parser.add_argument("--write-static", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write_static:
        write_static(*args.write_static)
        return 0
    sizes = sorted(int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip())
    if args.repeat < 1 or not sizes:
        parser.error("--repeat must be at least 1 and --sizes must name one size or more")
    with tempfile.TemporaryDirectory(prefix="ecohash-bench-") as temp:
        work = Path(temp)
        (work / "state").mkdir()
        env = child_env(work / "state")
        info = machine(env)
        results = {size: run_size(size, work, args.repeat, env) for size in sizes}
    text = report(info, results, args.repeat)
    print(text, end="")
    if args.out:
        args.out.write_text(text)
    return 0 if all(ok is not False for ok, _ in targets(results)) else 1


if __name__ == "__main__":
    sys.exit(main())
