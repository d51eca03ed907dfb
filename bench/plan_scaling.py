"""How plan, the Ansible inventory and render scale with a site's node count.

A benchmark, not a test: it prints figures and checks them against targets.

    .venv/bin/python bench/plan_scaling.py [--sizes 100,1000,10000,50000] [--repeat 3] [--markdown]

For each size it generates a site (bench/sites.py), checks it with `ecohash validate`,
then runs each measurement in a fresh child process, one at a time:

- plan: `ecohash plan FILE --json`, stdout to /dev/null (no rollout state exists, so it
  is the budget only);
- plan in-process: one child that imports ecohash first, then times load_site,
  compile_budget, plan_data and json.dumps, the work `plan --json` does after start-up;
- ansible-inventory: `ansible-inventory -i FILE --list` through the ecohash_site plugin;
- yaml parse: `yaml.load(f, Loader=yaml.CSafeLoader)` in a python child: the baseline;
- render: `ecohash render FILE -o DIR`, counting the files it writes.

A command that fails (a site too large for something, say) is reported with its
message, and the run goes on.

Wall time includes interpreter start-up and imports: that is what a user waits for.
Peak memory is the child's own ru_maxrss, as os.wait4 returns it for that one child:
the process-wide RUSAGE_CHILDREN figure is a maximum over every child ever reaped, so a
before/after delta says nothing about a later, smaller child. Linux also carries the
spawning process's peak RSS into a child across exec (a child of a 200 MB process
reports at least 200 MB), so each command is started by a bare launcher interpreter
(python -S -I, nothing imported, ~8 MiB) that times it, waits for it with wait4 and
hands the figures (wall, peak, user + system CPU) back on a pipe; the launcher's own
floor is printed with the results. The in-process child also sums the cyclic garbage
collector's pauses (gc.callbacks) during plan's phases: on large sites they are most of it.

--save FILE keeps the raw figures; --load FILE prints them again (e.g. with --markdown)
without measuring.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python")
ECOHASH = str(VENV_BIN / "ecohash")
ANSIBLE_INVENTORY = str(VENV_BIN / "ansible-inventory")
SITES_SCRIPT = str(ROOT / "bench" / "sites.py")

DEFAULT_SIZES = "100,1000,10000,50000"
TARGET_SIZE = 10_000
PLAN_LIMIT_S = 1.0
PLAN_PARSE_RATIO = 3.0
RENDER_LIMIT_S = 10.0
LINEAR_SLOPE = 1.15

PLAN, IN_PROCESS, ANSIBLE = "plan", "plan in-process", "ansible-inventory"
PARSE, RENDER = "yaml parse", "render"
COMMANDS = (PLAN, IN_PROCESS, ANSIBLE, PARSE, RENDER)
# What `plan --json` does after start-up, in order; "total" is their sum.
PLAN_PHASES = ("load_site", "compile_budget", "plan_data", "json.dumps")
# "gc" is the part of "total" spent in the cyclic garbage collector's pauses.
PHASES = ("imports", *PLAN_PHASES, "total", "gc", "bare parse")

BARE_PARSE = """
import sys, yaml
with open(sys.argv[1], "rb") as f:
    yaml.load(f, Loader=yaml.CSafeLoader)
"""

# Runs one command and reports its wall time, peak RSS, exit status and CPU time on fd argv[1].
# It is a bare interpreter (-S -I, nothing imported) so that the peak it hands down to
# its child across exec (see the module docstring) stays below any Python program's own.
LAUNCHER = """
import os, sys, time
report = int(sys.argv[1])
os.set_inheritable(report, False)
start = time.perf_counter()
pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - start
cpu = usage.ru_utime + usage.ru_stime
os.write(report, f"{wall} {usage.ru_maxrss} {os.waitstatus_to_exitcode(status)} {cpu}".encode())
"""

VERSIONS = """
import sys, yaml, ansible.release
print(sys.version.split()[0])
print(yaml.__version__, "with libyaml" if yaml.__with_libyaml__ else "WITHOUT libyaml (pure Python)")
print(ansible.release.__version__)
"""


@dataclass
class Runs:
    """Repeated measurements of one command on one site."""

    walls: list[float] = field(default_factory=list)
    peaks_kib: list[int] = field(default_factory=list)
    # user + system CPU seconds: wall well above it means the child waited for the machine.
    cpus: list[float] = field(default_factory=list)
    objects: int | None = None
    phases: list[dict[str, float]] = field(default_factory=list)  # in-process only
    error: str | None = None  # the command failed: its last line of stderr

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.walls)

    @property
    def best(self) -> float:
        """Best wall time; for the in-process child, best total of plan's phases."""
        return self.phase_best("total") if self.phases else min(self.walls)

    @property
    def median(self) -> float:
        if self.phases:
            return statistics.median(p["total"] for p in self.phases)
        return statistics.median(self.walls)

    @property
    def peak_mib(self) -> float:
        return max(self.peaks_kib) / 1024

    def phase_best(self, name: str) -> float:
        """Best time of one in-process phase; NaN when it was not recorded (older --save files)."""
        return min(p.get(name, math.nan) for p in self.phases)


@dataclass(frozen=True)
class Sample:
    """One run of one command, as the launcher saw it."""

    wall: float
    peak_kib: int
    cpu: float
    out: str


@dataclass
class Measurement:
    """Everything one benchmark run measured: what --save writes and --load reads."""

    info: list[tuple[str, str]]
    repeat: int
    floor_kib: int
    yaml_bytes: dict[int, int]
    results: dict[int, dict[str, Runs]]

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1) + "\n")

    @classmethod
    def load(cls, path: Path) -> Measurement:
        raw = json.loads(path.read_text())
        return cls(
            info=[(k, v) for k, v in raw["info"]], repeat=raw["repeat"], floor_kib=raw["floor_kib"],
            yaml_bytes={int(k): v for k, v in raw["yaml_bytes"].items()},
            results={int(size): {c: Runs(**r) for c, r in runs.items()}
                     for size, runs in raw["results"].items()},
        )


class ChildFailed(RuntimeError):
    """A measured command exited non-zero: its figures would be meaningless."""

    def __init__(self, argv: list[str], status: str, stderr: str):
        super().__init__(f"{' '.join(argv)} failed ({status}):\n{stderr}")
        lines = [line for line in stderr.splitlines() if line.strip()]
        self.summary = lines[-1].strip() if lines else status


# --- measuring ---------------------------------------------------------------------------

def measure(argv: list[str], env: dict[str, str], *, capture: bool = False) -> Sample:
    """Run argv in a fresh child; return its wall time, its own peak RSS, CPU time and stdout.

    stdout goes to /dev/null unless `capture`; stderr is kept for the error message.
    """
    read_end, write_end = os.pipe()
    with tempfile.TemporaryFile() as errors, os.fdopen(read_end, "rb") as reported:
        launcher = subprocess.Popen(
            [PYTHON, "-S", "-I", "-c", LAUNCHER, str(write_end), *argv], env=env, cwd=ROOT,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
            stderr=errors, pass_fds=(write_end,))
        os.close(write_end)
        out = launcher.stdout.read().decode() if launcher.stdout else ""
        launcher.wait()
        if launcher.stdout:
            launcher.stdout.close()
        fields = reported.read().decode().split()
        if launcher.returncode != 0 or len(fields) != 4 or fields[2] != "0":
            errors.seek(0)
            status = f"exit {fields[2]}" if len(fields) == 4 else f"launcher exit {launcher.returncode}"
            raise ChildFailed(argv, status, errors.read().decode(errors="replace")[-2000:])
    return Sample(float(fields[0]), int(fields[1]), float(fields[3]), out)


def child_env(state_dir: Path) -> dict[str, str]:
    # An empty state directory: no rollout state, so plan is the budget alone, and nothing
    # that other runs on this machine left behind can change what is measured.
    env = dict(os.environ, ECOHASH_STATE_DIR=str(state_dir), ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    return env


def command_argv(command: str, site: Path, work: Path) -> list[str]:
    if command == PLAN:
        return [ECOHASH, "plan", str(site), "--json"]
    if command == IN_PROCESS:
        return [PYTHON, __file__, "--in-process", str(site)]
    if command == ANSIBLE:
        return [ANSIBLE_INVENTORY, "-i", str(site), "--list"]
    if command == PARSE:
        return [PYTHON, "-c", BARE_PARSE, str(site)]
    if command == RENDER:
        return [ECOHASH, "render", str(site), "-o", str(work / "render")]
    raise ValueError(command)


def run_size(size: int, site: Path, commands: list[str], repeat: int, env: dict[str, str],
             work: Path) -> dict[str, Runs]:
    results: dict[str, Runs] = {}
    for command in commands:
        runs = results[command] = Runs()
        for attempt in range(repeat):
            if command == RENDER:
                shutil.rmtree(work / "render", ignore_errors=True)
            try:
                sample = measure(command_argv(command, site, work), env, capture=command == IN_PROCESS)
            except ChildFailed as failure:
                runs.error = failure.summary
                progress(f"bench-{size}: {command} FAILED: {failure}")
                break
            runs.walls.append(sample.wall)
            runs.peaks_kib.append(sample.peak_kib)
            runs.cpus.append(sample.cpu)
            if command == IN_PROCESS:
                runs.phases.append(json.loads(sample.out))
            if command == RENDER:
                # One .yaml file per object; the render's marker file is none.
                runs.objects = sum(name.endswith(".yaml") for _, _, files in os.walk(work / "render")
                                   for name in files)
            progress(f"bench-{size}: {command} {attempt + 1}/{repeat}: {sample.wall:.3f} s, "
                     f"cpu {sample.cpu:.3f} s, {sample.peak_kib / 1024:.0f} MiB")
    return results


def in_process(site: str) -> None:
    """The child of the in-process measurement: phase times of plan --json, as one JSON line."""
    import gc

    start = time.perf_counter()
    import yaml

    from ecohash.budget import compile_budget
    from ecohash.inventory import load_site
    from ecohash.json_text import dumps_indented
    from ecohash.report import plan_data

    times = {"imports": time.perf_counter() - start}

    def timed(phase: str, function: Any, *args: Any) -> Any:
        clock = time.perf_counter()
        result = function(*args)
        times[phase] = time.perf_counter() - clock
        return result

    def bare_parse() -> None:
        with open(site, "rb") as handle:
            yaml.load(handle, Loader=yaml.CSafeLoader)

    # The baseline first, its result dropped, so plan's phases start from a clean heap
    # and the baseline's collections do not walk plan's objects.
    timed("bare parse", bare_parse)
    gc.collect()
    pauses = {"gc": 0.0, "started": 0.0}

    def on_gc(phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            pauses["started"] = time.perf_counter()
        else:
            pauses["gc"] += time.perf_counter() - pauses["started"]

    gc.callbacks.append(on_gc)
    loaded = timed("load_site", load_site, site)
    compiled = timed("compile_budget", compile_budget, loaded)
    data = timed("plan_data", plan_data, compiled)
    # As print_json in commands/options.py does it (json.dumps(indent=2)'s bytes, faster);
    # the phase keeps its name so that saved figures still load.
    timed("json.dumps", dumps_indented, data)
    gc.callbacks.remove(on_gc)
    times["total"] = sum(times[p] for p in PLAN_PHASES)
    times["gc"] = pauses["gc"]
    print(json.dumps(times))


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def machine(env: dict[str, str]) -> list[tuple[str, str]]:
    cpu = next((line.split(":", 1)[1].strip() for line in _read("/proc/cpuinfo").splitlines()
                if line.startswith("model name")), platform.processor() or "unknown")
    mem_kib = next((int(line.split()[1]) for line in _read("/proc/meminfo").splitlines()
                    if line.startswith("MemTotal:")), 0)
    # Asked of the venv's python, so the driver never imports yaml (see the module docstring).
    versions = [*_output([PYTHON, "-c", VERSIONS], env).splitlines(), "?", "?", "?"]
    commit = _output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], env).strip()
    # Only changes to what is measured count: the benchmark's own files are left out.
    dirty = _output(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no", "--",
                     ".", ":(exclude)bench"], env).strip()
    return [
        ("CPU", f"{cpu}, {os.cpu_count()} cores"),
        ("RAM", f"{mem_kib / 1024**2:.1f} GiB"),
        ("OS", platform.platform()),
        ("Python", versions[0]),
        ("PyYAML", versions[1]),
        ("ansible-core", versions[2]),
        ("ecohash commit", commit + (" (tracked files outside bench/ modified)" if dirty else "")),
    ]


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _output(argv: list[str], env: dict[str, str]) -> str:
    return subprocess.run(argv, env=env, capture_output=True, text=True, check=False).stdout


# --- reporting ---------------------------------------------------------------------------

def table(headers: list[str], rows: list[list[str]], markdown: bool, left: int = 1) -> str:
    """Rows under headers; the first `left` columns are text, the others right-aligned figures."""
    if markdown:
        aligns = ["---" if i < left else "---:" for i in range(len(headers))]
        return "\n".join("| " + " | ".join(line) + " |" for line in [headers, aligns, *rows])
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]

    def fmt(row: list[str]) -> str:
        return "  ".join(cell.ljust(width) if i < left else cell.rjust(width)
                         for i, (cell, width) in enumerate(zip(row, widths, strict=True))).rstrip()

    return "\n".join([fmt(headers), fmt(["-" * w for w in widths]), *(fmt(r) for r in rows)])


def heading(text: str, markdown: bool) -> str:
    return f"\n### {text}\n" if markdown else f"\n== {text} ==\n"


def slope(sizes: list[int], times: list[float]) -> float:
    """Least-squares slope of log(time) on log(size): 1 is linear, 2 quadratic."""
    xs, ys = [math.log(s) for s in sizes], [math.log(t) for t in times]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)


def top_slope(sizes: list[int], times: list[float]) -> float:
    """The slope between the two largest sizes, where size-driven work dominates."""
    return math.log(times[-1] / times[-2]) / math.log(sizes[-1] / sizes[-2])


def series(results: dict[int, dict[str, Runs]], command: str) -> tuple[list[int], list[float]]:
    """Sizes where the command ran to the end, and its best time at each."""
    sizes = [s for s in sorted(results) if command in results[s] and results[s][command].ok]
    return sizes, [results[s][command].best for s in sizes]


def report(m: Measurement, markdown: bool) -> None:
    results = m.results
    print(heading("Machine", markdown))
    print(table(["machine", "value"], [[k, v] for k, v in m.info], markdown, left=2))
    print(f"\nBest and median of {m.repeat} runs (wall), each in a fresh process; cpu = the child's user + "
          "system seconds (about its wall for these single-threaded commands; wall well above cpu "
          "means it waited for the machine). Peak = the child's own "
          "ru_maxrss (os.wait4 in a bare launcher), largest of the runs; the launcher's floor is "
          f"{m.floor_kib / 1024:.1f} MiB (/bin/true measured the same way). ×parse = ratio to the "
          "bare CSafeLoader parse child (time best/best); for plan in-process, time is plan's "
          "phases after imports and the ratio is to the parse timed in that same child.")

    for size in sorted(results):
        runs, parse = results[size], results[size].get(PARSE)
        base = parse if parse and parse.ok else None
        rows, failures = [], []
        for command in COMMANDS:
            r = runs.get(command)
            if r is None:
                continue
            if not r.ok:
                rows.append([command, "FAILED", "-", "-", "-", "-", "-", "-"])
                failures.append(f"{command}: {r.error}")
                continue
            ratio_t = f"{r.best / base.best:.2f}" if base else "-"
            if r.phases:
                ratio_t = f"{r.best / r.phase_best('bare parse'):.2f}"
            # The in-process child's CPU covers its imports and baseline too: not shown.
            cpu = f"{min(r.cpus):.3f}" if r.cpus and not r.phases else "-"
            rows.append([command, f"{r.best:.3f}", f"{r.median:.3f}", cpu, f"{r.peak_mib:.0f}", ratio_t,
                         f"{r.peak_mib / base.peak_mib:.2f}" if base else "-",
                         str(r.objects) if r.objects is not None else "-"])
        print(heading(f"{size:,} nodes ({m.yaml_bytes[size] / 1024:,.0f} KiB of YAML)", markdown))
        print(table(["command", "best s", "median s", "best cpu s", "peak MiB", "×parse time", "×parse mem",
                     "objects"],
                    rows, markdown))
        for failure in failures:
            print(f"\nFAILED {failure}")

    in_proc = [s for s in sorted(results) if IN_PROCESS in results[s] and results[s][IN_PROCESS].ok]
    if in_proc:
        print(heading("Where plan --json's time goes (in-process, best of each phase, s)", markdown))
        print(table(["nodes", *PHASES],
                    [[f"{s:,}", *(f"{results[s][IN_PROCESS].phase_best(p):.3f}" for p in PHASES)]
                     for s in in_proc], markdown))

    growth_rows = []
    for command in COMMANDS:
        xs, ts = series(results, command)
        if len(xs) < 2:
            continue
        per_k = {n: f"{1000 * t / (n / 1000):.1f}" for n, t in zip(xs, ts, strict=True)}
        steps = {(a, b): f"{(tb / b) / (ta / a):.2f}"
                 for (a, ta), (b, tb) in zip(zip(xs, ts, strict=True), zip(xs[1:], ts[1:], strict=True),
                                             strict=False)}
        growth_rows.append((command, per_k, steps, slope(xs, ts), top_slope(xs, ts)))
    if growth_rows:
        sizes = sorted(results)
        pairs = list(zip(sizes, sizes[1:], strict=False))
        print(heading("Growth: ms per 1,000 nodes, and its ratio size over size (1.00 = linear)", markdown))
        print(table(
            ["command", *(f"ms/1k @{s:,}" for s in sizes), *(f"{a:,}→{b:,}" for a, b in pairs),
             "log-log slope", "top slope"],
            [[command, *(per_k.get(s, "-") for s in sizes), *(steps.get(p, "-") for p in pairs),
              f"{whole:.2f}", f"{top:.2f}"] for command, per_k, steps, whole, top in growth_rows],
            markdown))
        print("\nWall times include a fixed start-up cost, which flattens the slope over all sizes; "
              "the top slope (two largest sizes that ran) is where size-driven work dominates. "
              "A size where a command failed is left out of its growth.")

    print(heading("Targets", markdown))
    print(table(["target", "measured", "result"], targets(results), markdown, left=3))


def targets(results: dict[int, dict[str, Runs]]) -> list[list[str]]:
    rows: list[list[str]] = []
    at = {c: r for c, r in results.get(TARGET_SIZE, {}).items()}

    def check(name: str, ok: bool | None, measured: str, result: str | None = None) -> None:
        rows.append([name, measured, result or ("n/a" if ok is None else "PASS" if ok else "FAIL")])

    def measured(command: str, text: str) -> str:
        r = at.get(command)
        return "not run" if r is None else f"failed: {r.error}" if not r.ok else text

    plan, parse, inproc, render = (at.get(c) for c in (PLAN, PARSE, IN_PROCESS, RENDER))
    check(f"plan {TARGET_SIZE:,} nodes < {PLAN_LIMIT_S:g} s (CLI wall)",
          plan.ok and plan.best < PLAN_LIMIT_S if plan else None,
          measured(PLAN, f"{plan.best:.3f} s" if plan and plan.ok else ""))
    both = plan is not None and parse is not None
    check(f"plan {TARGET_SIZE:,} nodes < {PLAN_PARSE_RATIO:g}× bare parse (CLI wall / parse child wall)",
          (plan.ok and parse.ok and plan.best < PLAN_PARSE_RATIO * parse.best) if both else None,
          f"{plan.best / parse.best:.2f}×" if both and plan.ok and parse.ok else "not run")
    if inproc:
        ratio = inproc.best / inproc.phase_best("bare parse") if inproc.ok else math.inf
        check(f"plan {TARGET_SIZE:,} nodes < {PLAN_PARSE_RATIO:g}× bare parse (in-process, no start-up)",
              ratio < PLAN_PARSE_RATIO, measured(IN_PROCESS, f"{ratio:.2f}×"))
    for command in COMMANDS:
        xs, ts = series(results, command)
        if len(xs) < 2:
            continue
        whole, top = slope(xs, ts), top_slope(xs, ts)
        linear = max(whole, top) <= LINEAR_SLOPE
        ran = "" if len(xs) == len(results) else f" (sizes that ran: up to {xs[-1]:,})"
        # The baseline is no target of ecohash's; its growth is shown to read the others by.
        check(f"{command}: growth linear (slope and top slope ≤ {LINEAR_SLOPE}){ran}", linear,
              f"{whole:.2f} / {top:.2f}: {'linear' if linear else 'SUPERLINEAR'}",
              "info" if command == PARSE else None)
    check(f"render {TARGET_SIZE:,} nodes < {RENDER_LIMIT_S:g} s",
          render.ok and render.best < RENDER_LIMIT_S if render else None,
          measured(RENDER, f"{render.best:.3f} s" if render and render.ok else ""))
    for size, runs in sorted(results.items()):
        for command, r in runs.items():
            if not r.ok and size != TARGET_SIZE:
                check(f"{command} {size:,} nodes runs at all", False, f"failed: {r.error}")
    return rows


# --- main --------------------------------------------------------------------------------

def measure_all(sizes: list[int], commands: list[str], repeat: int, sites_dir: Path | None) -> Measurement:
    with tempfile.TemporaryDirectory(prefix="ecohash-bench-") as temp:
        work = Path(temp)
        (work / "state").mkdir()
        env = child_env(work / "state")
        sites_dir = sites_dir or work / "sites"
        # Generated in a child, as everything else: the driver's RSS must stay small.
        subprocess.run([PYTHON, SITES_SCRIPT, "--sizes", ",".join(map(str, sizes)), str(sites_dir)],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        files = {size: sites_dir / f"bench-{size}" / "site.yaml" for size in sizes}
        for size in sizes:
            progress(f"bench-{size}: validating")
            measure([ECOHASH, "validate", str(files[size])], env)
        if ANSIBLE in commands:
            _check_plugin(files[sizes[0]], sizes[0], env)
        info = machine(env)
        startup = min((measure([PYTHON, "-c", "pass"], env) for _ in range(5)), key=lambda s: s.wall)
        info.append(("python -c pass", f"{startup.wall * 1000:.0f} ms, {startup.peak_kib / 1024:.1f} MiB"))
        floor_kib = measure(["/bin/true"], env).peak_kib
        results = {size: run_size(size, files[size], commands, repeat, env, work) for size in sizes}
        return Measurement(info, repeat, floor_kib, {s: f.stat().st_size for s, f in files.items()}, results)


def _check_plugin(site: Path, size: int, env: dict[str, str]) -> None:
    """Once, untimed: the plugin, not some fallback, made the inventory, with every node."""
    out = measure([ANSIBLE_INVENTORY, "-i", str(site), "--list"], env, capture=True).out
    hosts = len(json.loads(out)["_meta"]["hostvars"])
    if hosts != size:
        raise SystemExit(f"ansible-inventory listed {hosts} hosts for a site of {size} nodes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help=f"node counts (default {DEFAULT_SIZES})")
    parser.add_argument("--repeat", type=int, default=3, help="runs per command and size (default 3)")
    parser.add_argument("--markdown", action="store_true",
                        help="print Markdown tables for docs/benchmarks.md")
    parser.add_argument("--commands", default=",".join(COMMANDS),
                        help="which to measure, comma-separated (default: all)")
    parser.add_argument("--sites-dir", type=Path,
                        help="where to write the sites (default: a temp dir, removed)")
    parser.add_argument("--save", type=Path, metavar="FILE", help="also write the raw figures as JSON")
    parser.add_argument("--load", type=Path, metavar="FILE", help="print saved figures; measure nothing")
    parser.add_argument("--in-process", metavar="FILE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.in_process:
        in_process(args.in_process)
        return
    if args.load:
        report(Measurement.load(args.load), args.markdown)
        return
    sizes = sorted(int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip())
    commands = [c.strip() for c in args.commands.split(",") if c.strip()]
    unknown = sorted(set(commands) - set(COMMANDS))
    if unknown:
        parser.error(f"unknown commands {unknown}; choose from {', '.join(COMMANDS)}")
    if args.repeat < 1 or not sizes:
        parser.error("--repeat must be at least 1 and --sizes must name one size or more")
    measurement = measure_all(sizes, commands, args.repeat, args.sites_dir)
    if args.save:
        measurement.save(args.save)
    report(measurement, args.markdown)


if __name__ == "__main__":
    main()
