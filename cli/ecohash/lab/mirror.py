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

from ecohash import process
from ecohash.bundle import contents, keys, localdebs
from ecohash.bundle.build import build_bundle
from ecohash.bundle.contents import ContentSources
from ecohash.bundle.fetch import fetch
from ecohash.bundle.items import Item
from ecohash.bundle.load import LoadTarget, load_verified
from ecohash.bundle.publish import KEYRING_PATH as KEYRING_PATH  # where tests find the keyring
from ecohash.bundle.verify import verify_bundle
from ecohash.lab import labbundle, labstandard, simdriver, simimage, simk3s, simtoolkit
from ecohash.lab.inventory import SITE_NAME
from ecohash.lab.layout import BRIDGE_ADDRESS, MIRROR_PORT, LabPaths
from ecohash.process import TrackedProcess
from ecohash.standard import NodeStandard, Platform, k3s_mirror_path, load_standard

# Lab hosts run Debian 12; the mirror carries that platform's pinned packages.
LAB_PLATFORM: Platform = "debian12"


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


@dataclass(frozen=True)
class SimulatedContent:
    """The lab's stand-ins, and the SIMULATED standard that pins them."""

    standard_file: Path
    debs: list[Path]  # the SIMULATED driver and toolkit at the standard's versions
    k3s: Path
    k3s_sha256: str
    image: simimage.LabImage


def write_simulated(paths: LabPaths, production: NodeStandard) -> SimulatedContent:
    """Build the lab's stand-ins into the run directory and write the lab's standard naming them."""
    sources = paths.run / "bundle-sources"
    # The SIMULATED packages in a directory of their own: the one `bundle build lab --deb` takes,
    # as a site's build takes NVIDIA's (the later toolkit, outside the pin, is kept apart).
    debs = [simdriver.build(paths.simulated_debs),
            *simtoolkit.build(paths.simulated_debs, (simtoolkit.PACKAGE_VERSION,))]
    k3s_file, k3s_sha256 = simk3s.build(sources / "files", production.k3s.version)
    image = simimage.build(sources / "image")
    labstandard.write(
        paths.standard_file, labstandard.simulated_standard(production, k3s_sha256, image.digest)
    )
    return SimulatedContent(standard_file=paths.standard_file, debs=debs, k3s=k3s_file,
                            k3s_sha256=k3s_sha256, image=image)


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
    simulated = write_simulated(paths, production)
    containerd = [
        fetch(pinned.url, paths.deb_cache / Path(pinned.url).name, pinned.sha256,
              what=f"{name} {pinned.version}")
        for name, pinned in production.containerd[LAB_PLATFORM].items()
    ]
    debs = (*simulated.debs, *containerd)
    standard_file, image = simulated.standard_file, simulated.image
    leave_out = labbundle.leave_out(executor_wheels)
    if resolve_in is None:
        # Only what the base lacks a source for, checked as `bundle build --deb` checks it.
        checked = localdebs.check(load_standard(standard_file), LAB_PLATFORM, debs, sources / "checked-debs")
        items = [Item("deb", f"apt/{deb.path.name}", deb.path, sha256=deb.sha256) for deb in checked]
        # A later toolkit, outside the standard's pin on purpose: lab tests roll the standard
        # forward to it and back (tests/roles/test_apt_packages.py).
        (later,) = simtoolkit.build(sources / "apt", (simtoolkit.LATER_PACKAGE_VERSION,))
        items.append(Item("deb", f"apt/{later.name}", later))
        if "wheels" not in leave_out:
            items += contents.wheel_items(sources / "wheels")
    else:
        items = contents.collect(standard_file, None, sources / "closure", sources=ContentSources(
            base_root=resolve_in, debs=debs, apt_proxy=apt_proxy,
            leave_out=leave_out | {"k3s", "inference_runtime"},
        ))
    items.append(Item("file", f"files/{k3s_mirror_path(production.k3s.version)}", simulated.k3s,
                      sha256=simulated.k3s_sha256))
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
