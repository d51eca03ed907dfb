"""`ecohash fleet` over 50 sites of 1,000 nodes each: under 5 s, start-up included.

A benchmark, not a test: it prints figures and checks them against the target.

    .venv/bin/python bench/fleet_speed.py [--sites 50] [--nodes 1000] [--repeat 3] [--out FILE]

The sites are bench/sites.py's generated site of N nodes (every node an explicit entry,
racks and containers that really cap), written once per site under its own name and in
one of five regions, into a fresh directory. Each measurement runs `ecohash fleet DIR`
in a fresh process, one at a time, with an empty state directory (no site has rollout
state, as on a machine that never provisioned them): --json to /dev/null, the text
table to /dev/null, and --json with --html FILE. Wall time includes interpreter
start-up and imports, which is what a user waits for; the figure is the best of
--repeat runs, the median beside it, and the CPU time (user + system, the forked
workers' included) says what the run cost on a machine shared with other work.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from sites import site_text  # noqa: E402

ECOHASH = str(Path(sys.executable).parent / "ecohash")
TARGET_S = 5.0
REGIONS = ("us-east", "us-north", "us-south", "us-west", "eu-north")


def write_fleet(directory: Path, sites: int, nodes: int) -> list[Path]:
    """`sites` copies of the generated N-node site, each under its own name and a region."""
    template = site_text(nodes)
    files = []
    for index in range(sites):
        name = f"fleet-{index + 1:03d}"
        text = (template.replace(f"name: bench-{nodes}\n", f"name: {name}\n", 1)
                .replace("region: bench\n", f"region: {REGIONS[index % len(REGIONS)]}\n", 1))
        path = directory / name / "site.yaml"
        path.parent.mkdir(parents=True)
        path.write_text(text, encoding="utf-8")
        files.append(path)
    return files


def measure(command: list[str], state: Path) -> tuple[float, float]:
    """(wall s, CPU s): the command's user + system time, its forked workers' included (a
    child's usage counts the children it waited for)."""
    environment = {**os.environ, "ECOHASH_STATE_DIR": str(state)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=environment, check=False)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {result.returncode}: {result.stderr.strip()}")
    return elapsed, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=50)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ecohash-fleet-bench-") as scratch:
        directory = Path(scratch) / "inventories"
        files = write_fleet(directory, args.sites, args.nodes)
        size = sum(path.stat().st_size for path in files)
        page = Path(scratch) / "fleet.html"
        commands = {
            "fleet --json": [ECOHASH, "fleet", str(directory), "--json"],
            "fleet (text)": [ECOHASH, "fleet", str(directory)],
            "fleet --json --html": [ECOHASH, "fleet", str(directory), "--json", "--html", str(page)],
        }
        results: dict[str, list[float]] = {}
        cpu: dict[str, list[float]] = {}
        for label, command in commands.items():
            for round_ in range(args.repeat):
                state = Path(scratch) / f"state-{label.replace(' ', '_')}-{round_}"
                elapsed, used = measure(command, state)
                results.setdefault(label, []).append(elapsed)
                cpu.setdefault(label, []).append(used)
                print(f"{label} {round_ + 1}/{args.repeat}: {elapsed:.2f} s, CPU {used:.2f} s",
                      file=sys.stderr)
        page_size = page.stat().st_size
    lines = [
        f"# bench/fleet_speed.py --sites {args.sites} --nodes {args.nodes} --repeat {args.repeat} "
        f"(Python {platform.python_version()}, {os.cpu_count()} CPUs)",
        f"# {args.sites} generated sites of {args.nodes:,} nodes ({args.sites * args.nodes:,} nodes, "
        f"{size:,} B of YAML); no rollout state; wall time, start-up included",
        "command               best     median   CPU (median)   runs",
    ]
    for label, times in results.items():
        lines.append(f"{label:<20} {min(times):6.2f} s {statistics.median(times):6.2f} s   "
                     f"{statistics.median(cpu[label]):6.2f} s      " + " ".join(f"{t:.2f}" for t in times))
    lines.append(f"# the page: {page_size:,} B")
    worst = max(min(times) for times in results.values())
    verdict = "PASS" if worst < TARGET_S else "FAIL"
    lines.append(f"target: {args.sites} sites of {args.nodes:,} nodes under {TARGET_S:g} s: "
                 f"{worst:.2f} s (slowest command, best of {args.repeat}): {verdict}")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        args.out.write_text(text)
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
