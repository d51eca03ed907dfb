"""The site registry when the site runs none: Debian's `docker-registry` with ecohash's config.

The packaged /etc/docker/registry/config.yml turns on htpasswd auth (with no users), so
ecohash never uses it: it writes its own, with no auth, storage under ecohash's state
directory, bound only to the address the site file names (the lab: its bridge address),
and starts `docker-registry serve` on it. Nodes only pull (containerd's hosts.toml gives
them pull and resolve); pushes come from `ecohash bundle load` on this machine.
"""

from __future__ import annotations

import os
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import NoReturn

import yaml

from ecohash import process
from ecohash.errors import EcohashError, InvalidInputError
from ecohash.paths import state_dir
from ecohash.process import TrackedProcess

DEFAULT_PORT = 5000
# Where ecohash runs a site's registry when the site file names none.
DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
START_TIMEOUT_S = 15.0


def site_directory(site_name: str) -> Path:
    """Where ecohash keeps the registry it runs for a site: config, storage, log."""
    return state_dir() / "registry" / site_name


def config(storage: Path, address: str) -> dict[str, object]:
    """docker-registry's configuration: filesystem storage, plain HTTP on `address`, no auth."""
    return {
        "version": 0.1,
        "log": {"level": "info", "fields": {"service": "ecohash-site-registry"}},
        "storage": {
            "filesystem": {"rootdirectory": str(storage)},
            # Blobs are pushed by digest and never deleted by ecohash: nothing may remove one
            # that a pinned manifest needs.
            "delete": {"enabled": False},
        },
        "http": {"addr": address, "headers": {"X-Content-Type-Options": ["nosniff"]}},
    }


def host_and_port(registry_url: str) -> tuple[str, int]:
    address = registry_url.split("://", 1)[-1].split("/", 1)[0]
    host, _, port = address.rpartition(":") if ":" in address else (address, "", "")
    return host, int(port) if port else (DEFAULT_PORT if registry_url.startswith("http://") else 443)


def answers(registry_url: str) -> bool:
    """Whether a registry v2 API answers at the URL's host (200, or 401 for one with auth)."""
    scheme = "http" if registry_url.startswith("http://") else "https"
    host = registry_url.split("://", 1)[-1].split("/", 1)[0]
    try:
        with urllib.request.urlopen(f"{scheme}://{host}/v2/", timeout=5) as response:
            status: int = response.status
            return status == 200
    except urllib.error.HTTPError as error:
        return error.code == 401
    except OSError:
        return False


def is_local(host: str) -> bool:
    """Whether `host` is an address of this machine: one a socket here can bind to."""
    try:
        address = socket.gethostbyname(host)
    except OSError:
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address, 0))
        except OSError:
            return False
    return True


def write_config(registry_url: str, directory: Path) -> Path:
    """docker-registry's config for `registry_url` (plain http), storage beside it in `directory`."""
    if not registry_url.startswith("http://"):
        raise InvalidInputError(
            f"ecohash starts a site registry over plain http only; {registry_url} asks for"
            " https: run one with TLS there, or write the registry as http://"
        )
    host, port = host_and_port(registry_url)
    config_file = directory / "config.yml"
    storage = directory / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    config_file.write_text(yaml.safe_dump(config(storage, f"{host}:{port}"), sort_keys=False))
    return config_file


def serve(registry_url: str, directory: Path) -> NoReturn:
    """Become docker-registry for `registry_url`, in the foreground: what a systemd unit runs
    (examples/systemd/ecohash-site-registry@.service), so the registry outlives reboots."""
    config_file = write_config(registry_url, directory)
    os.execvp("docker-registry", ["docker-registry", "serve", str(config_file)])


def start(registry_url: str, directory: Path, log_file: Path) -> TrackedProcess:
    """Start docker-registry for `registry_url` (plain http) with storage and config in
    `directory`, and wait until it answers."""
    config_file = write_config(registry_url, directory)
    daemon = process.start_daemon(["docker-registry", "serve", config_file], log_file)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not answers(registry_url):
        if not daemon.is_alive() or time.monotonic() > deadline:
            process.kill_all([daemon])
            raise EcohashError(
                f"docker-registry did not start at {registry_url}; see {log_file}"
            )
        time.sleep(0.1)
    return daemon


def ensure_running(registry_url: str, directory: Path, log_file: Path) -> TrackedProcess | None:
    """The registry at `registry_url`; started here when none answers and its address is
    this machine's (None when one was already running)."""
    if answers(registry_url):
        return None
    host, _ = host_and_port(registry_url)
    if not is_local(host):
        raise EcohashError(
            f"no registry answers at {registry_url}, and {host} is not this machine:"
            " start the site registry there, or load the bundle on that machine"
        )
    return start(registry_url, directory, log_file)
