"""Prometheus exporter: each GPU's live power draw next to the cap ecohash planned for it.

One runs on every GPU node of a site's cluster, as a DaemonSet. Each scrape of /metrics asks
nvidia-smi for every GPU's draw and enforced limit, and compares them with this node's entry in
the budget that ecohash's budget compiler planned (JSON files mounted from ConfigMaps), so that
a limit changed by hand, or a node that was never planned, shows on a dashboard.

It runs inside the vLLM image, which is already on every GPU node, pinned by digest, and has
python3; NVIDIA's container runtime injects nvidia-smi into it when NVIDIA_VISIBLE_DEVICES=all.
So no image of its own is built, pulled or trusted: this file is shipped as the text of a
ConfigMap, and must stay one file that uses only Python's standard library (3.10+).

It only reads: it never sets a power limit and never writes a file.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import urlsplit

SMI_FIELDS = "index,uuid,name,power.draw,power.limit"
SMI_TIMEOUT_S = 5
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Metric names and their label sets are an API that dashboards and alerts depend on.
FAMILIES = {
    "ecohash_gpu_power_draw_watts": "Power the GPU draws now, as nvidia-smi reports it.",
    "ecohash_gpu_power_limit_watts": "Power limit the driver enforces on the GPU now.",
    "ecohash_gpu_power_cap_watts": "Power cap ecohash's budget planned for the GPU.",
    "ecohash_gpu_power_limit_matches_cap": "1 if the enforced limit, rounded, equals the planned cap.",
    "ecohash_gpu_power_headroom_watts": "Planned cap minus the power the GPU draws now.",
    "ecohash_node_planned_draw_watts": "Power the budget planned for the whole node.",
    "ecohash_node_in_budget": "1 if this node has an entry in the planned budget.",
    "ecohash_nvidia_smi_up": "1 if the last nvidia-smi query succeeded.",
}


class GpuReading(NamedTuple):
    gpu_index: str  # nvidia-smi's index; `index` would hide tuple.index
    uuid: str
    name: str
    draw_w: float | None  # None where nvidia-smi printed [N/A] or [Not Supported]
    limit_w: float | None


def log(message: str) -> None:
    print(f"power_exporter: {message}", file=sys.stderr, flush=True)


def watts(field: str) -> float | None:
    try:
        return float(field)
    except ValueError:  # "[N/A]", "[Not Supported]", "[Unknown Error]"...
        return None


def parse_smi_csv(text: str) -> list[GpuReading]:
    """Readings from `nvidia-smi --query-gpu=SMI_FIELDS --format=csv,noheader,nounits`."""
    readings = []
    for row in csv.reader(text.splitlines(), skipinitialspace=True):
        if not row:
            continue
        if len(row) != 5:
            log(f"skipped an nvidia-smi line with {len(row)} fields, expected 5: {', '.join(row)}")
            continue
        index, uuid, name, draw, limit = (field.strip() for field in row)
        readings.append(GpuReading(index, uuid, name, watts(draw), watts(limit)))
    return readings


def query_gpus(nvidia_smi: str) -> list[GpuReading] | None:
    """This node's GPUs, or None (logged) when nvidia-smi is missing, fails or hangs."""
    command = [nvidia_smi, f"--query-gpu={SMI_FIELDS}", "--format=csv,noheader,nounits"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=SMI_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        log(f"{nvidia_smi} did not answer within {SMI_TIMEOUT_S} s")
        return None
    except OSError as error:
        log(f"cannot run {nvidia_smi}: {error.strerror or error}")
        return None
    if done.returncode != 0:
        # nvidia-smi prints some errors ("No devices were found") on stdout, not stderr.
        said = " ".join((done.stderr.strip() or done.stdout.strip()).split())
        log(f"{nvidia_smi} exited {done.returncode}: {said}")
        return None
    return parse_smi_csv(done.stdout)


class BudgetReader:
    """Finds a node's entry in `<budget_dir>/nodes/*.json`, parsing a file only when it changed.

    A site has 10,000+ nodes split over one file per container; scrapes come every few seconds
    and the budget changes rarely, so each scrape only stats the files. The key includes the
    inode because a ConfigMap update swaps in new files (a symlink flip), not new contents.
    """

    def __init__(self, budget_dir: str):
        self.nodes_dir = os.path.join(budget_dir, "nodes")
        self._parsed: dict[str, tuple[tuple[int, int, int], dict[str, dict[str, Any]]]] = {}
        self._lock = threading.Lock()  # scrapes are served by concurrent threads

    def entry(self, node_name: str) -> dict[str, Any] | None:
        with self._lock:
            try:
                names = sorted(n for n in os.listdir(self.nodes_dir) if n.endswith(".json"))
            except OSError as error:
                log(f"cannot list {self.nodes_dir}: {error.strerror or error}")
                names = []
            fresh = {}
            for name in names:
                path = os.path.join(self.nodes_dir, name)
                try:
                    stat = os.stat(path)
                except OSError:
                    continue  # removed between listdir and stat by a ConfigMap update
                key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
                cached = self._parsed.get(path)
                fresh[path] = cached if cached and cached[0] == key else (key, self._parse(path))
            self._parsed = fresh
            for _, entries in fresh.values():
                if node_name in entries:
                    return entries[node_name]
            return None

    @staticmethod
    def _parse(path: str) -> dict[str, dict[str, Any]]:
        # A broken file is cached as empty under its key, so it is logged once, not every scrape.
        try:
            with open(path, encoding="utf-8") as file:
                nodes = json.load(file)
            return {node["name"]: node for node in nodes}
        except (OSError, ValueError, TypeError, KeyError) as error:
            log(f"ignored {path}: not a JSON list of node entries ({error})")
            return {}


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def number(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)  # 612, not 612.0


def render_metrics(node: str, entry: dict[str, Any] | None, readings: list[GpuReading] | None) -> str:
    """The exposition text (format 0.0.4) for one scrape."""
    samples: dict[str, list[tuple[dict[str, str], float]]] = {name: [] for name in FAMILIES}

    def add(family: str, labels: dict[str, str], value: float) -> None:
        samples[family].append((labels, float(value)))

    container = str(entry.get("container") or "") if entry else ""
    cap = entry.get("gpu_cap_w") if entry else None  # null: a node planned without a GPU cap
    add("ecohash_node_in_budget", {"node": node}, 1 if entry else 0)
    add("ecohash_nvidia_smi_up", {"node": node}, 0 if readings is None else 1)
    if entry and entry.get("draw_w") is not None:
        add("ecohash_node_planned_draw_watts", {"node": node, "container": container}, entry["draw_w"])
    for gpu in readings or []:
        labels = {"node": node, "container": container, "gpu": gpu.gpu_index, "uuid": gpu.uuid}
        if gpu.draw_w is not None:
            add("ecohash_gpu_power_draw_watts", labels, gpu.draw_w)
        if gpu.limit_w is not None:
            add("ecohash_gpu_power_limit_watts", labels, gpu.limit_w)
        if cap is None:
            continue
        add("ecohash_gpu_power_cap_watts", labels, cap)
        if gpu.limit_w is not None:
            # The driver may report 612.00 for a cap of 612; a limit set by hand differs by watts.
            add("ecohash_gpu_power_limit_matches_cap", labels, 1 if round(gpu.limit_w) == cap else 0)
        if gpu.draw_w is not None:
            add("ecohash_gpu_power_headroom_watts", labels, cap - gpu.draw_w)

    lines = []
    for family, help_text in FAMILIES.items():
        if not samples[family]:
            continue
        lines += [f"# HELP {family} {help_text}", f"# TYPE {family} gauge"]
        for labels, value in samples[family]:
            pairs = ",".join(f'{key}="{escape(text)}"' for key, text in labels.items())
            lines.append(f"{family}{{{pairs}}} {number(value)}")
    return "\n".join(lines) + "\n"


class Exporter:
    def __init__(self, budget_dir: str, node: str, nvidia_smi: str):
        self.node = node
        self.nvidia_smi = nvidia_smi
        self.budget = BudgetReader(budget_dir)

    def scrape(self) -> str:
        return render_metrics(self.node, self.budget.entry(self.node), query_gpus(self.nvidia_smi))


def make_server(host: str, port: int, exporter: Exporter) -> ThreadingHTTPServer:
    """A server (not yet serving) for /metrics and /healthz; port 0 binds a free port."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path == "/metrics":
                self._reply(200, CONTENT_TYPE, exporter.scrape())
            elif path == "/healthz":
                self._reply(200, "text/plain; charset=utf-8", "ok\n")
            else:
                self._reply(404, "text/plain; charset=utf-8", "not found: try /metrics\n")

        def _reply(self, status: int, content_type: str, text: str) -> None:
            body = text.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # one access line per scrape would bury the failures in the pod's log

    return ThreadingHTTPServer((host, port), Handler)


def listen_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT such as 0.0.0.0:9847, got {text!r}")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--budget-dir",
        default="/etc/ecohash/budget",
        help="folder with site.json and nodes/<container>.json (default: %(default)s)",
    )
    parser.add_argument(
        "--node-name",
        default=os.environ.get("NODE_NAME", ""),
        help="this node's name in the budget (default: $NODE_NAME)",
    )
    parser.add_argument(
        "--listen",
        type=listen_address,
        default="0.0.0.0:9847",
        help="HOST:PORT to serve /metrics on; port 0 picks a free one (default: %(default)s)",
    )
    parser.add_argument("--nvidia-smi", default="nvidia-smi", help="nvidia-smi to run (default: %(default)s)")
    parser.add_argument("--once", action="store_true", help="print the metrics once and exit")
    args = parser.parse_args(argv)
    if not args.node_name:
        parser.error("no node name: pass --node-name or set NODE_NAME")

    listen_host, listen_port = args.listen
    exporter = Exporter(args.budget_dir, args.node_name, args.nvidia_smi)
    if args.once:
        sys.stdout.write(exporter.scrape())
        return 0
    try:
        server = make_server(listen_host, listen_port, exporter)
    except OSError as error:
        log(f"cannot listen on {listen_host}:{listen_port}: {error.strerror or error}")
        return 1
    host, port = server.socket.getsockname()[:2]  # the port bound, where 0 was asked
    log(f"serving http://{host}:{port}/metrics for node {args.node_name}")
    # As a container's PID 1, Python would ignore SIGTERM and every pod stop would wait out
    # the grace period; exit at once instead, there is nothing to flush.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
