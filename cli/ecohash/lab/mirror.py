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

from ecohash.bundle import keys
from ecohash.bundle.build import build_bundle
from ecohash.bundle.items import Item
from ecohash.bundle.load import load_verified
from ecohash.bundle.publish import KEYRING_PATH as KEYRING_PATH  # where tests find the keyring
from ecohash.errors import EcohashError
from ecohash.lab import labstandard, process, simdriver, simimage, simk3s, simtoolkit
from ecohash.lab.inventory import SITE_NAME
from ecohash.lab.layout import BRIDGE_ADDRESS, MIRROR_PORT, LabPaths
from ecohash.lab.process import TrackedProcess
from ecohash.standard import NodeStandard, PinnedDeb

# Lab hosts run Debian 12; the mirror carries that platform's pinned packages.
LAB_PLATFORM = "debian12"


def mirror_url() -> str:
    return f"http://{BRIDGE_ADDRESS}:{MIRROR_PORT}"


@dataclass(frozen=True)
class MirrorContent:
    keyring_sha256: str
    standard_file: Path


def populate(paths: LabPaths, production: NodeStandard, registry_url: str) -> MirrorContent:
    """Build the lab's content into a signed bundle, verify it and load it into the mirror
    (serving mirror_dir/current) and the registry; write the lab's simulated node standard."""
    sources = paths.run / "bundle-sources"
    repository = sources / "apt"
    repository.mkdir(parents=True, exist_ok=True)
    debs = [simdriver.build(repository), *simtoolkit.build(repository)]
    debs += [
        _pinned_deb(paths.deb_cache, name, pinned)
        for name, pinned in production.containerd[LAB_PLATFORM].items()
    ]
    k3s_file, k3s_sha256 = simk3s.build(sources / "files", production.k3s.version)
    image = simimage.build(sources / "image")
    standard_file = paths.standard_file
    labstandard.write(
        standard_file, labstandard.simulated_standard(production, k3s_sha256, image.digest)
    )
    items = [Item("deb", f"apt/{deb.name}", deb) for deb in debs]
    items.append(Item("file", f"files/{simk3s.relative_path(production.k3s.version)}", k3s_file,
                      sha256=k3s_sha256))
    items += image.items
    # The lab's own signing key, for this lab only: the secret never leaves this process;
    # the public key stays in the run directory for whoever checks the lab's bundle again.
    key = keys.generate()
    paths.bundle_public_key.write_text(key.public.text())
    build_bundle(items, paths.bundle, standard_file=standard_file, site_name=SITE_NAME, key=key)
    loaded = load_verified(
        paths.bundle,
        key.public,
        mirror_root=paths.mirror_dir,
        registry_url=registry_url,
        mirror_key=paths.mirror_key,
    )
    return MirrorContent(keyring_sha256=loaded.keyring_sha256, standard_file=standard_file)


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
            # The current release; a load switches it under the running server.
            str(mirror_dir / "current"),
            str(MIRROR_PORT),
        ],
        log_file,
    )
