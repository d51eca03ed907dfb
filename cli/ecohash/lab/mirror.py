"""The site mirror: a signed flat apt repository and a file store, served on the bridge.

Real air-gapped sites install from a mirror like this one. The lab fills it from the
node standard: the SIMULATED driver and container toolkit it builds, the pinned
containerd and runc .debs (downloaded once, checked against the standard's sha256), and
a SIMULATED k3s in the file store. Python's http.server serves it, bound to the bridge
address so only the lab's hosts and this machine can reach it.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ecohash import aptrepo
from ecohash.errors import EcohashError
from ecohash.lab import labstandard, process, simdriver, simk3s, simtoolkit
from ecohash.lab.layout import BRIDGE_ADDRESS, MIRROR_PORT, LabPaths
from ecohash.lab.process import TrackedProcess
from ecohash.standard import NodeStandard, PinnedDeb

KEYRING_PATH = "keys/site-mirror.gpg"
# Lab hosts run Debian 12; the mirror carries that platform's pinned packages.
LAB_PLATFORM = "debian12"
LABEL = "ecohash lab site mirror"


def mirror_url() -> str:
    return f"http://{BRIDGE_ADDRESS}:{MIRROR_PORT}"


@dataclass(frozen=True)
class MirrorContent:
    keyring_sha256: str
    standard_file: Path


def populate(paths: LabPaths, production: NodeStandard) -> MirrorContent:
    """Fill the mirror, sign it, and write the lab's simulated node standard."""
    mirror_dir = paths.mirror_dir
    repository = mirror_dir / "apt"
    simdriver.build(repository)
    simtoolkit.build(repository)
    for name, pinned in production.containerd[LAB_PLATFORM].items():
        shutil.copyfile(_pinned_deb(paths.deb_cache, name, pinned), repository / Path(pinned.url).name)
    files = mirror_dir / "files"
    _, k3s_sha256 = simk3s.build(files, production.k3s.version)
    aptrepo.index_repository(repository, LABEL)

    aptrepo.ensure_key(paths.mirror_key)
    try:
        aptrepo.sign_release(paths.mirror_key, repository)
        keyring_sha256 = aptrepo.export_keyring(paths.mirror_key, mirror_dir / KEYRING_PATH)
    finally:
        aptrepo.stop_agent(paths.mirror_key)
    standard_file = paths.run / "node-standard.lock.yml"
    labstandard.write(standard_file, labstandard.simulated_standard(production, k3s_sha256))
    return MirrorContent(keyring_sha256=keyring_sha256, standard_file=standard_file)


def _pinned_deb(cache: Path, name: str, pinned: PinnedDeb) -> Path:
    """The pinned .deb from the cache, downloaded first if needed; its sha256 is checked."""
    target = cache / Path(pinned.url).name
    if not target.exists() or _sha256(target) != pinned.sha256:
        cache.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        try:
            with urllib.request.urlopen(pinned.url, timeout=60) as response, open(partial, "wb") as out:
                shutil.copyfileobj(response, out)
        except OSError as error:
            raise EcohashError(
                f"cannot download {name} {pinned.version} from {pinned.url}: {error}"
            ) from None
        actual = _sha256(partial)
        if actual != pinned.sha256:
            partial.unlink()
            raise EcohashError(
                f"{pinned.url} has sha256 {actual}, but the node standard pins {pinned.sha256}"
            )
        partial.rename(target)
    return target


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def start(mirror_dir: Path, log_file: Path) -> TrackedProcess:
    return process.start_daemon(
        [
            sys.executable,
            "-m",
            "http.server",
            "--bind",
            str(BRIDGE_ADDRESS),
            "--directory",
            str(mirror_dir),
            str(MIRROR_PORT),
        ],
        log_file,
    )
