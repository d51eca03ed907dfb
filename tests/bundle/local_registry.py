"""Debian's docker-registry on 127.0.0.1 with a throwaway configuration and storage, for tests."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DOCKER_REGISTRY = "/usr/bin/docker-registry"


def unavailable_reason() -> str | None:
    if not Path(DOCKER_REGISTRY).is_file() and not shutil.which("docker-registry"):
        return "needs Debian's docker-registry (apt-get install docker-registry)"
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def local_registry(directory: Path) -> Iterator[str]:
    """A running registry's base URL (http://127.0.0.1:PORT); stopped on exit."""
    port = _free_port()
    config = directory / "config.yml"
    # No auth section: the package's shipped config turns on htpasswd auth.
    config.write_text(
        "version: 0.1\n"
        "log: {level: error}\n"
        f"storage: {{filesystem: {{rootdirectory: {directory / 'storage'}}}}}\n"
        f"http: {{addr: '127.0.0.1:{port}'}}\n"
    )
    url = f"http://127.0.0.1:{port}"
    registry = subprocess.Popen([DOCKER_REGISTRY, "serve", str(config)], stdout=subprocess.DEVNULL,
                                stderr=(directory / "registry.log").open("w"))
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                urllib.request.urlopen(url + "/v2/", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or registry.poll() is not None:
                    raise RuntimeError((directory / "registry.log").read_text()) from None
                time.sleep(0.05)
        yield url
    finally:
        registry.terminate()
        registry.wait(timeout=10)
