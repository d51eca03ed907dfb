"""The site mirror: a signed flat apt repository and a file store, served on the bridge.

Real air-gapped sites install from a mirror like this one, filled by `ecohash bundle load`.
The lab fills its own the same way: the SIMULATED driver and container toolkit it builds,
the pinned containerd and runc .debs (downloaded once, checked against the standard's
sha256), a SIMULATED k3s and the lab's small image go into a bundle signed with a key of
this lab's own, which is verified and loaded (offline: with every package the roles
install, resolved in the base). Python's http.server serves the current release, bound to
the bridge address so only the lab's hosts and this machine can reach it.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ecohash.bundle import contents, keys
from ecohash.bundle.build import build_bundle
from ecohash.bundle.contents import ContentSources
from ecohash.bundle.fetch import fetch
from ecohash.bundle.items import Item
from ecohash.bundle.load import LoadTarget, load_verified
from ecohash.bundle.publish import KEYRING_PATH as KEYRING_PATH  # where tests find the keyring
from ecohash.bundle.verify import verify_bundle
from ecohash.lab import labstandard, process, simdriver, simimage, simk3s, simtoolkit
from ecohash.lab.inventory import SITE_NAME
from ecohash.lab.layout import BRIDGE_ADDRESS, MIRROR_PORT, LabPaths
from ecohash.lab.process import TrackedProcess
from ecohash.standard import NodeStandard, k3s_mirror_path

# Lab hosts run Debian 12; the mirror carries that platform's pinned packages.
LAB_PLATFORM = "debian12"


def mirror_url() -> str:
    return f"http://{BRIDGE_ADDRESS}:{MIRROR_PORT}"


@dataclass(frozen=True)
class BundleFigures:
    """What the lab's bundle weighed and cost on this `lab up`."""

    blobs: int
    bytes: int
    debs: int
    collect_s: float  # building the lab's own content, fetching, resolving (offline) the closure
    build_s: float
    verify_s: float
    load_s: float  # load verifies again first, as `ecohash bundle load` does

    def summary(self) -> str:
        return (f"bundle: {self.blobs} blobs ({self.debs} .debs), {self.bytes / 2**20:.1f} MiB; "
                f"collected in {self.collect_s:.1f} s, built in {self.build_s:.1f} s, "
                f"verified in {self.verify_s:.1f} s, "
                f"loaded in {self.load_s:.1f} s")


@dataclass(frozen=True)
class MirrorContent:
    keyring_sha256: str
    standard_file: Path
    figures: BundleFigures


def populate(
    paths: LabPaths, production: NodeStandard, registry_url: str, *, apt_proxy: str,
    resolve_in: Path | None = None, executor_wheels: bool = False,
) -> MirrorContent:
    """Build the lab's content into a signed bundle, verify it and load it into the mirror
    (serving mirror_dir/current) and the registry; write the lab's simulated node standard.

    resolve_in: a Debian root file system (the lab's base) to resolve, through `apt_proxy`,
    every package the roles install with its dependencies, as `ecohash bundle build` does
    for a site; without it the bundle carries only what the base lacks a source for (the
    SIMULATED packages, containerd and runc), and the hosts get the rest through the proxy.
    executor_wheels: carry the executor's wheels too (`lab up --executor`), as a site's
    bundle does; the lab leaves them out otherwise, since nothing else installs them.
    """
    collecting = time.perf_counter()
    sources = paths.run / "bundle-sources"
    repository = sources / "apt"
    repository.mkdir(parents=True, exist_ok=True)
    debs = [simdriver.build(repository), *simtoolkit.build(repository)]
    debs += [
        fetch(pinned.url, paths.deb_cache / Path(pinned.url).name, pinned.sha256,
              what=f"{name} {pinned.version}")
        for name, pinned in production.containerd[LAB_PLATFORM].items()
    ]
    k3s_file, k3s_sha256 = simk3s.build(sources / "files", production.k3s.version)
    image = simimage.build(sources / "image")
    standard_file = paths.standard_file
    labstandard.write(
        standard_file, labstandard.simulated_standard(production, k3s_sha256, image.digest)
    )
    carried = {"apt", "wheels"} if executor_wheels else {"apt"}
    if resolve_in is None:
        items = [Item("deb", f"apt/{deb.name}", deb) for deb in debs]
        if executor_wheels:
            items += contents.wheel_items(sources / "wheels")
    else:
        items = contents.collect(standard_file, None, sources / "closure", sources=ContentSources(
            base_root=resolve_in, debs=tuple(debs), apt_proxy=apt_proxy,
            leave_out=frozenset(contents.PARTS) - carried,
        ))
    items.append(Item("file", f"files/{k3s_mirror_path(production.k3s.version)}", k3s_file,
                      sha256=k3s_sha256))
    items += image.items
    # The lab's own signing key, for this lab only: the secret never leaves this process;
    # the public key stays in the run directory for whoever checks the lab's bundle again.
    key = keys.generate()
    paths.bundle_public_key.write_text(key.public.text())
    started = time.perf_counter()
    manifest = build_bundle(items, paths.bundle, standard_file=standard_file, site_name=SITE_NAME,
                            key=key)
    built = time.perf_counter()
    verify_bundle(paths.bundle, key.public)
    verified = time.perf_counter()
    loaded = load_verified(
        paths.bundle,
        key.public,
        LoadTarget(SITE_NAME, standard_file, str(standard_file)),
        mirror_root=paths.mirror_dir,
        registry_url=registry_url,
        mirror_key=paths.mirror_key,
    )
    figures = BundleFigures(
        blobs=len(manifest.blobs()),
        bytes=sum(manifest.blobs().values()),
        debs=sum(1 for entry in manifest.entries if entry.kind == "deb"),
        collect_s=started - collecting, build_s=built - started, verify_s=verified - built,
        load_s=time.perf_counter() - verified,
    )
    return MirrorContent(keyring_sha256=loaded.keyring_sha256, standard_file=standard_file,
                         figures=figures)


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
