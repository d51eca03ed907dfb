#!/usr/bin/env python3
"""Bootstrap fan-out on the lab: ecohash's Ansible configuration against stock settings.

For each host count, on fresh lab hosts: a first bootstrap and then an idempotent
re-run, once with ecohash's configuration and once with stock Ansible settings, the
order flipping every round so that neither always runs first. Both run the same
playbook (playbooks/bootstrap.yml) from the same site file against the same hosts with
ansible-playbook; only the configuration differs:

- ecohash: this repository's ansible.cfg (50 forks, pipelining, a fact subset, smart
  gathering) plus the per-site jsonfile fact cache that `ecohash bootstrap` turns on;
- stock: only what the playbook needs to run at all (the roles path, the inventory plugin
  that reads a site file, host key checking, which is on in both and Ansible's default);
  Ansible's defaults for everything else: 5 forks, no pipelining, every fact gathered on
  every run, no fact cache.

Every host of a measurement is in one batch (extra var ecohash_serial = the host count,
for both configurations): the lab site's rollout serial (2) is a site's availability
policy and would cap the fan-out at two hosts whatever Ansible's settings are. The k3s
server still goes first, alone, as bootstrap.yml always does.

An untimed warm-up run fills the lab's apt proxy first, so neither pays for downloads.
Needs root (the lab); replaces any running lab. Usage:

    .venv/bin/python bench/bootstrap_fanout.py [--hosts 1,4,8] [--rounds 1] [--markdown]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ecohash.ansible.runner import fact_cache_environment
from ecohash.paths import state_dir

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ECOHASH = str(BIN / "ecohash")
PLAYBOOK = str(ROOT / "playbooks" / "bootstrap.yml")
CONFIGS = ("ecohash", "stock")

STOCK_CFG = f"""\
[defaults]
collections_path = {ROOT / "collections"}
host_key_checking = True

[inventory]
enable_plugins = ecohash.site.ecohash_site
"""

TARGET_SPEEDUP_8 = 1.5  # ecohash vs stock, first run of 8 hosts
TARGET_RERUN = 0.40  # idempotent re-run / first run, ecohash

Results = dict[tuple[int, str], list[tuple[float, float]]]  # (hosts, config) -> [(first, re-run)]


def lab_up(hosts: int) -> Path:
    """Fresh lab hosts (new roots, keys, no facts or rollout state); returns the site file."""
    subprocess.run([ECOHASH, "lab", "up", "--nodes", str(hosts), "--containers", str(min(hosts, 2))],
                   check=True, capture_output=True, text=True)
    return state_dir() / "inventories" / "lab" / "site.yaml"


def environment(config: str, work: Path) -> dict[str, str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "ANSIBLE_FORCE_COLOR": "0"}
    if config == "ecohash":
        env["ANSIBLE_CONFIG"] = str(ROOT / "ansible.cfg")
        # What `ecohash bootstrap` adds: a fact cache (here one per measurement).
        env.update(fact_cache_environment(work / "facts"))
    else:
        stock = work / "stock-ansible.cfg"
        stock.write_text(STOCK_CFG)
        env["ANSIBLE_CONFIG"] = str(stock)
    return env


def bootstrap(site_file: Path, hosts: int, env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(site_file), PLAYBOOK,
                             "--extra-vars", f"ecohash_serial={hosts}"],
                            env=env, capture_output=True, text=True, cwd=ROOT)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"bootstrap failed (exit {result.returncode}):\n{result.stdout[-4000:]}\n"
                 f"{result.stderr[-2000:]}")
    return elapsed


def measure(hosts: int, config: str) -> tuple[float, float]:
    """(first run, idempotent re-run) seconds on fresh hosts with one configuration."""
    site_file = lab_up(hosts)
    with tempfile.TemporaryDirectory(prefix="ecohash-bench-") as work:
        env = environment(config, Path(work))
        first = bootstrap(site_file, hosts, env)
        again = bootstrap(site_file, hosts, env)
    return first, again


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown CPU")
    memory_kb = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                         if line.startswith("MemTotal")))
    version = subprocess.run([str(BIN / "ansible"), "--version"], capture_output=True, text=True)
    ansible = version.stdout.split("\n")[0]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    return (f"{cpu}, {os.cpu_count()} CPUs, {memory_kb / 2**20:.0f} GiB RAM; {ansible}; "
            f"Python {sys.version.split()[0]}; ecohash {commit.stdout.strip() or 'unknown'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", default="1,4,8", help="host counts, comma-separated (default 1,4,8)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds per host count (default 1)")
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("the lab needs root: sudo .venv/bin/python bench/bootstrap_fanout.py")
    counts = [int(n) for n in args.hosts.split(",")]
    print(f"machine: {machine()}", flush=True)
    print("warm-up (untimed): one host, ecohash configuration, fills the apt proxy", flush=True)
    measure(1, "ecohash")
    results: Results = {}
    for round_index in range(args.rounds):
        for position, hosts in enumerate(counts):
            order = CONFIGS if (round_index + position) % 2 == 0 else tuple(reversed(CONFIGS))
            for config in order:
                first, again = measure(hosts, config)
                results.setdefault((hosts, config), []).append((first, again))
                print(f"round {round_index + 1}: {hosts} host(s), {config}: first {first:.1f} s, "
                      f"re-run {again:.1f} s", flush=True)
    report(counts, results, args.markdown)


def report(counts: list[int], results: Results, markdown: bool) -> None:
    def median(hosts: int, config: str, index: int) -> float:
        return statistics.median(run[index] for run in results[(hosts, config)])

    rows = []
    for hosts in counts:
        eco_first, eco_again = median(hosts, "ecohash", 0), median(hosts, "ecohash", 1)
        stock_first, stock_again = median(hosts, "stock", 0), median(hosts, "stock", 1)
        rows.append((hosts, eco_first, stock_first, stock_first / eco_first, eco_again, stock_again,
                     stock_again / eco_again, eco_again / eco_first, stock_again / stock_first))
    header = ("hosts", "ecohash first s", "stock first s", "speed-up", "ecohash re-run s", "stock re-run s",
              "speed-up", "ecohash re-run/first", "stock re-run/first")
    print()
    print("  ".join(f"{h:>13}" for h in header))
    for row in rows:
        print("  ".join(f"{value:>13}" if isinstance(value, int) else f"{value:>13.2f}" for value in row))
    if markdown:
        print()
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for hosts, *values in rows:
            print(f"| {hosts} | " + " | ".join(f"{v:.1f}" if i in (0, 1, 3, 4) else f"{v:.2f}"
                                              for i, v in enumerate(values)) + " |")
    print()
    by_hosts = {row[0]: row for row in rows}
    if 8 in by_hosts:
        speedup = by_hosts[8][3]
        verdict = "PASS" if speedup >= TARGET_SPEEDUP_8 else "FAIL"
        print(f"{verdict}: 8 hosts, first run {speedup:.2f}x faster with ecohash's configuration "
              f"(target >= {TARGET_SPEEDUP_8}x)")
    for hosts, row in by_hosts.items():
        verdict = "PASS" if row[7] < TARGET_RERUN else "FAIL"
        print(f"{verdict}: {hosts} host(s), ecohash's idempotent re-run takes {row[7]:.0%} of the first "
              f"(target < {TARGET_RERUN:.0%})")


if __name__ == "__main__":
    main()
