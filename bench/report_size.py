"""The provision report's size per node at 100 and 1,000 nodes.

A benchmark, not a test: it prints figures; nothing here is timed.

    .venv/bin/python bench/report_size.py [--sizes 100,1000] [--out bench/results/report_size.txt]

Each size gets a synthetic report of a first rollout: nodes shaped as the lab's real
report.json holds them (node_health's verdict with its nine checks, verification's
sixteen, a 64-hex fingerprint), in containers of 100 nodes (racks of 25), 10% skipped
as already standard, 1% failed (a failing check named), 0.3% unreachable, the rest
passed. It is written with ecohash.rollout.report.write_report, the provision's own
writer, and the three files are measured: bytes, bytes per node, lines.
"""

from __future__ import annotations

import argparse
import copy
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "cli"))

from ecohash.rollout.report import REPORT_SCHEMA, write_report  # noqa: E402

NODES_PER_CONTAINER = 100
NODES_PER_RACK = 25
FINGERPRINT = "7633e36e60aaf32f7de56c625cefa1c8457acea031022dbacd24268327204ac1"
DIGEST = "36a0ea2b133d2c97a903c0944c9a6ccdbf6010594cadf6f8058acd63a43efe09"

# node_health's verdict and verification's checks, as the lab's report.json holds them.
VERDICT = {
    "node": "NAME", "passed": True, "failed_checks": [], "simulated": True,
    "checks": [
        {"check": "gpu_count", "passed": True, "found": 2, "expected": 2},
        {"check": "driver_version", "passed": True, "found": ["550.127.05"], "expected": "550.127.05"},
        {"check": "gpu_model", "passed": True, "found": ["NVIDIA H100 80GB HBM3"],
         "expected": "NVIDIA H100 80GB HBM3"},
        {"check": "power_limit_w", "passed": True, "found": ["450.00", "450.00"], "expected": 450},
        {"check": "persistence_mode", "passed": True, "found": ["Enabled"], "expected": "Enabled"},
        {"check": "ecc_uncorrected", "passed": True, "found": ["0", "0"], "expected": 0},
        {"check": "retired_pages_pending", "passed": True,
         "found": ["GPU 0: not applicable (row remapping)", "GPU 1: not applicable (row remapping)"],
         "expected": "No"},
        {"check": "remapped_rows_pending", "passed": True, "found": ["GPU 0: 0", "GPU 1: 0"],
         "expected": "no row remap pending (one is: reset the GPU, then check again)"},
        {"check": "remapped_rows_failure", "passed": True, "found": ["GPU 0: 0", "GPU 1: 0"],
         "expected": "no row remap failure (one is: the GPU needs replacing)"},
    ],
}
CHECKS = [
    {"name": "containerd 1.6.20~ds1-1+deb12u3 installed and held", "passed": True,
     "detail": "1.6.20~ds1-1+deb12u3, held"},
    {"name": "nvidia-container-toolkit-sim 1.17.8-1~ecohashsim1 installed and held", "passed": True,
     "detail": "1.17.8-1~ecohashsim1, held"},
    {"name": "nvidia-driver-sim 550.127.05-1~ecohashsim1 installed and held", "passed": True,
     "detail": "550.127.05-1~ecohashsim1, held"},
    {"name": "runc 1.1.5+ds1-1+deb12u1 installed and held", "passed": True,
     "detail": "1.1.5+ds1-1+deb12u1, held"},
    {"name": "containerd.service enabled and running", "passed": True, "detail": "enabled, active"},
    {"name": "2 GPUs", "passed": True, "detail": "2"},
    {"name": "every GPU is NVIDIA H100 80GB HBM3", "passed": True, "detail": "NVIDIA H100 80GB HBM3"},
    {"name": "driver 550.127.05", "passed": True, "detail": "550.127.05"},
    {"name": "power limit 450 W on every GPU", "passed": True, "detail": "450.00, 450.00"},
    {"name": "persistence mode on every GPU", "passed": True, "detail": "Enabled"},
    {"name": "ecohash-gpu-power.service enabled", "passed": True, "detail": "enabled, inactive"},
    {"name": "node_health verdict passed", "passed": True, "detail": "failed checks: -"},
    {"name": "inference image pinned by digest", "passed": True,
     "detail": f"10.213.0.1:5000/ecohash-lab/simulated-inference@sha256:{DIGEST}"},
    {"name": "/usr/local/bin/k3s sha256 40783efebb4c", "passed": True, "detail": "40783efebb4c"},
    {"name": "k3s.service enabled", "passed": True, "detail": "enabled, active"},
    {"name": "Node labels and taints as the inventory gives them", "passed": True,
     "detail": "as the inventory"},
]


def node_name(index: int) -> str:
    container, place = divmod(index, NODES_PER_CONTAINER)
    rack, slot = divmod(place, NODES_PER_RACK)
    return f"c{container + 1:02d}-r{rack + 1:02d}-n{slot + 1:02d}"


def synthetic_node(index: int) -> dict[str, Any]:
    name = node_name(index)
    container, rack, _ = name.split("-")
    node: dict[str, Any] = {
        "name": name, "container": container, "rack": rack, "gpu_model": "h100-sxm", "gpus": 2,
        "gpu_cap_w": 450,
        "status": "passed", "reason": None, "fingerprint": FINGERPRINT, "wave": 2 + index // 200,
        "duration_s": 56.5 + index % 7, "verdict": {**copy.deepcopy(VERDICT), "node": name},
        "checks": copy.deepcopy(CHECKS), "gpu_draw_w": 900.0,
    }
    if index % 10 == 3:
        node.update(status="skipped",
                    reason="already standard at this fingerprint (passed in 20261201T101500Z-provision)",
                    wave=None, duration_s=None, verdict=None, checks=[], gpu_draw_w=None)
    elif index % 100 == 41:
        node["status"] = "failed"
        node["reason"] = "failed acceptance: power_limit_w"
        node["verdict"].update(passed=False, failed_checks=["power_limit_w"])
        node["verdict"]["checks"][3].update(passed=False, found=["700.00", "450.00"])
        node["checks"][8].update(passed=False, detail="700.00, 450.00")
    elif index % 333 == 77:
        node.update(status="unreachable", reason="preflight: ssh: connect to host: No route to host",
                    wave=None, duration_s=10.0, verdict=None, checks=[], gpu_draw_w=None)
    return node


def synthetic_report(size: int) -> dict[str, Any]:
    nodes = [synthetic_node(index) for index in range(size)]
    counts = {status: sum(n["status"] == status for n in nodes) for status in
              ("passed", "failed", "unreachable", "skipped")}
    containers = sorted({n["container"] for n in nodes})
    waves = sorted({n["wave"] for n in nodes if n["wave"] is not None})
    return {
        "schema": REPORT_SCHEMA, "site": f"bench-{size}", "run": "20261202T101500Z-provision",
        "directory": f"/var/lib/ecohash/runs/bench-{size}/20261202T101500Z-provision",
        "started": "2026-12-02T10:15:00Z", "finished": "2026-12-02T11:02:41Z", "duration_s": 2861.4,
        "outcome": "completed", "message": None, "simulated": True,
        "standard": {"name": "ecohash-lab-simulated", "file": "/repo/node-standard.lock.yml"},
        "options": {"limit": None, "wave_size": "200", "max_fail_pct": 5, "shards": None, "force": False,
                    "dry_run": False},
        "stack": {"action": "rendered", "reason": "no pulumi CLI on PATH", "directory": "/runs/stack",
                  "objects": 40},
        "totals": {"nodes": size, "passed": counts["passed"],
                   "failed": counts["failed"] + counts["unreachable"], "skipped": counts["skipped"],
                   "not_run": 0},
        "containers": [{"name": c, "budget_kw": 500.0, "planned_draw_kw": 412.5, "measured_gpu_draw_kw": 81.0,
                        "gpus": 2 * sum(n["container"] == c for n in nodes),
                        "nodes": sum(n["container"] == c for n in nodes)} for c in containers],
        "waves": [{"index": w, "name": "canary" if w == 1 else f"wave {w}",
                   "nodes": [n["name"] for n in nodes if n["wave"] == w], "duration_s": 600.0,
                   "failed": [n["name"] for n in nodes if n["wave"] == w and n["status"] == "failed"],
                   "directory": f"/runs/wave-{w:02d}", "shards": 8} for w in waves],
        "nodes": nodes,
        "failed": [{"name": n["name"], "reason": n["reason"]} for n in nodes
                   if n["status"] in ("failed", "unreachable")],
    }


def measure(size: int, directory: Path) -> list[str]:
    files = write_report(synthetic_report(size), directory)
    rows = []
    for kind in ("json", "text", "html"):
        path: Path = getattr(files, kind)
        data = path.read_bytes()
        lines = len(data.splitlines())
        rows.append(f"{size:>6,}  {kind:<5} {len(data):>12,} B  {len(data) / size:>8,.0f} B/node"
                    f"  {lines:>8,} lines")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000")
    parser.add_argument("--out", type=Path, help="also write the figures here")
    args = parser.parse_args()
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip() or "unknown"
    lines = [f"# bench/report_size.py --sizes {args.sizes} at commit {commit}"
             f" (Python {platform.python_version()})",
             "nodes   form         size       per node       lines"]
    with tempfile.TemporaryDirectory() as temporary:
        for size in (int(s) for s in args.sizes.split(",")):
            lines += measure(size, Path(temporary) / str(size))
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
