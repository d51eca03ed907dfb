#!/usr/bin/env python3
"""Curtailment speed on the lab: from the command to every GPU's cap verified, and a projection.

For each host count, on fresh lab hosts: every GPU node gets its cap over SSH in parallel
(ecohash.grid.actuate.start_event, what `ecohash curtail` runs), each GPU's enforced limit
read back and checked, then the event is released; --rounds times. The figure is the
event's verified_s: from the command's start (after the site is loaded and planned) to
every reachable GPU verified at its cap. The controller's CPU time is measured beside it.

The hosts are not provisioned whole (a 32-host provision takes a quarter of an hour
here): each gets exactly what a curtailment uses on a provisioned node, the gpu_power
role's script (/usr/local/sbin/ecohash-gpu-power) and planned-cap file, and the lab's
SIMULATED nvidia-smi (the nvidia-driver-sim package's one file), copied over SSH.

The projection to a site of 1,250 nodes (10,000 GPUs, 8 per node) follows from two
measured figures:

    T(n) = t_node + n x c / k

t_node is one node's latency (a login and one command, measured alone: one host), c the
controller's CPU seconds per node (key exchange, SSH, parsing: measured at the largest
host count), k the controller's cores; with at most WORKERS nodes in flight at once,
latency adds ceil(n / WORKERS) x t_node when that is larger. On the lab, the hosts' sshd
and scripts run on the controller's own cores, so the lab's times are an upper bound for
the same controller on a real site; the projection counts only the controller's CPU.

Needs root (the lab); replaces any running lab and takes it down at the end. Usage:

    .venv/bin/python bench/curtail_speed.py [--hosts 1,4,8,32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from ecohash.budget import compile_budget
from ecohash.grid import actuate
from ecohash.grid.nodes import SCRIPT, WORKERS
from ecohash.grid.rule import target_for
from ecohash.inventory import load_site
from ecohash.lab import lifecycle, nvidia_smi_sim
from ecohash.paths import project_root, state_dir

BIN = Path(sys.executable).parent
ECOHASH = str(BIN / "ecohash")
NODE_SCRIPT = project_root() / "roles" / "gpu_power" / "files" / "ecohash-gpu-power"
TARGET_LAB_S = 5.0  # command to all caps verified, on the lab
TARGET_PROJECTED_S = 30.0  # the same, projected to 1,250 nodes (10,000 GPUs)
PROJECTED_NODES = 1250
CUT_PCT = Decimal(20)


def lab_up(hosts: int) -> Path:
    command = [ECOHASH, "lab", "up", "--nodes", str(hosts), "--containers", str(min(hosts, 2))]
    started = subprocess.run(command, check=False, capture_output=True, text=True)
    if started.returncode != 0:
        raise SystemExit(f"ecohash lab up --nodes {hosts} failed: {started.stderr.strip()}")
    return state_dir() / "inventories" / "lab" / "site.yaml"


def prepare(site_file: Path) -> None:
    """What a curtailment needs on each host: the node script, its planned cap, SIMULATED nvidia-smi."""
    plan = compile_budget(load_site(site_file))
    script = NODE_SCRIPT.read_bytes()
    smi = Path(nvidia_smi_sim.__file__).read_bytes()

    def install(name: str, cap_w: int) -> None:
        steps = [
            ("install -d /var/lib/nvidia-driver-sim /etc/ecohash && cat > /usr/bin/nvidia-smi"
             " && chmod 755 /usr/bin/nvidia-smi", smi),
            (f"cat > {SCRIPT} && chmod 755 {SCRIPT}", script),
            (f"echo ECOHASH_GPU_CAP_W={cap_w} > /etc/ecohash/gpu-power.env && {SCRIPT}", b""),
        ]
        for command, data in steps:
            subprocess.run(lifecycle.ssh_command(name, [command]), input=data, check=True,
                           capture_output=True)

    nodes = [(n.node.name, n.gpu_cap_w) for n in plan.nodes if n.gpu_cap_w is not None]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda node: install(*node), nodes))


def measure(site_file: Path) -> tuple[float, float]:
    """One curtailment and its release: (verified_s, controller CPU s of the curtailment)."""
    site = load_site(site_file)
    plan = compile_budget(site)
    request = actuate.CurtailRequest(site, plan, target_for(plan, by_pct=CUT_PCT), settle_s=0)
    before = resource.getrusage(resource.RUSAGE_SELF)
    outcome = actuate.start_event(request)
    after = resource.getrusage(resource.RUSAGE_SELF)
    if not outcome.ok or outcome.event.verified_s is None or outcome.event.held:
        raise SystemExit(f"curtailment not verified: {outcome.lines}")
    actuate.release_event(site, plan, timedelta(0))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return outcome.event.verified_s, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", default="1,4,8,32", help="host counts, comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    counts = [int(count) for count in options.hosts.split(",")]
    results: dict[int, list[tuple[float, float]]] = {}
    for hosts in counts:
        site_file = lab_up(hosts)
        prepare(site_file)
        measure(site_file)  # untimed: the first login of a fresh host pays for its sshd's start
        results[hosts] = [measure(site_file) for _ in range(options.rounds)]
        for number, (verified, cpu) in enumerate(results[hosts], 1):
            print(f"{hosts} host(s), round {number}: caps verified {verified:.3f} s, "
                  f"controller CPU {cpu:.3f} s", flush=True)
    cores = os.cpu_count() or 1
    rows = []
    for hosts in counts:
        verified = statistics.median(v for v, _ in results[hosts])
        cpu = statistics.median(c for _, c in results[hosts])
        rows.append((hosts, verified, cpu, cpu / hosts))
    t_node = next((verified for hosts, verified, _, _ in rows if hosts == 1), min(r[1] for r in rows))
    largest = max(rows)
    c = largest[3]
    projected = max(t_node + PROJECTED_NODES * c / cores, math.ceil(PROJECTED_NODES / WORKERS) * t_node)
    header = "| hosts | caps verified s (median) | controller CPU s | CPU s per node |"
    print()
    print(header)
    print("|---|---|---|---|")
    for hosts, verified, cpu, per_node in rows:
        print(f"| {hosts} | {verified:.3f} | {cpu:.3f} | {per_node:.4f} |")
    print()
    print(f"projection to {PROJECTED_NODES} nodes: T = t_node + n x c / k = {t_node:.3f} + "
          f"{PROJECTED_NODES} x {c:.4f} / {cores} = {t_node + PROJECTED_NODES * c / cores:.1f} s; "
          f"latency bound ceil(n / {WORKERS}) x t_node = "
          f"{math.ceil(PROJECTED_NODES / WORKERS) * t_node:.1f} s; "
          f"projected {projected:.1f} s")
    failed = False
    for hosts, verified, _, _ in rows:
        if hosts >= 4:
            ok = verified < TARGET_LAB_S
            failed |= not ok
            print(f"{'PASS' if ok else 'FAIL'}: {hosts} lab hosts, caps verified in {verified:.2f} s "
                  f"(target < {TARGET_LAB_S:g} s)")
    ok = projected < TARGET_PROJECTED_S
    failed |= not ok
    print(f"{'PASS' if ok else 'FAIL'}: projected {PROJECTED_NODES} nodes in {projected:.1f} s "
          f"(target < {TARGET_PROJECTED_S:g} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    started = time.monotonic()
    try:
        sys.exit(main())
    finally:
        # Up to 32 hosts' systemd and sshd: not left running for whoever uses the machine next.
        subprocess.run([ECOHASH, "lab", "down"], check=False, capture_output=True)
        print(f"bench ran {time.monotonic() - started:.0f} s", file=sys.stderr)
