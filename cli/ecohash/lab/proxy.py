"""The lab's apt proxy: apt-cacher-ng bound to the bridge address, the hosts' only way out.

Debian's packaged configuration remaps deb.debian.org to backends that do not resolve on
machines like this one (503 "Host not found"), so the lab runs it with a private
configuration without Remap- lines. Its cache lives outside the run directory so that
packages downloaded once serve every later lab too.
"""

from __future__ import annotations

from pathlib import Path

from ecohash import process
from ecohash.lab.layout import BRIDGE_ADDRESS, PROXY_PORT
from ecohash.process import TrackedProcess


def proxy_url() -> str:
    return f"http://{BRIDGE_ADDRESS}:{PROXY_PORT}"


def write_config(config_dir: Path, cache_dir: Path, log_dir: Path) -> None:
    config_dir.mkdir(parents=True, exist_ok=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "acng.conf").write_text(
        "# Private configuration written by `ecohash lab up`: no Remap- lines on purpose.\n"
        f"CacheDir: {cache_dir}\n"
        f"LogDir: {log_dir}\n"
        f"BindAddress: {BRIDGE_ADDRESS}\n"
        f"Port: {PROXY_PORT}\n"
        f"PidFile: {config_dir / 'apt-cacher-ng.pid'}\n"
        f"SocketPath: {config_dir / 'socket'}\n"
        "ForeGround: 1\n"
        "ReportPage: acng-report.html\n"
        "ExThreshold: 4\n"
        # No CONNECT tunnels: the proxy serves package downloads, it is no general way out.
        "PassThroughPattern: ^$\n"
    )


def start(config_dir: Path, cache_dir: Path, log_dir: Path) -> TrackedProcess:
    write_config(config_dir, cache_dir, log_dir)
    return process.start_daemon(
        ["apt-cacher-ng", "-c", config_dir], log_dir / "apt-cacher-ng.console.log"
    )
