"""The lab's base root filesystem: Debian 12 built once with debootstrap, then reused.

The base is cached under the state directory, keyed by a hash of everything that shapes
it (suite, variant, mirror, packages, and the version of the tweaks below), so changing the
package list builds a new base instead of silently reusing the old one. Hosts mount it
read-only as the lower layer of an overlay: it is never written to after the build.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from ecohash import process
from ecohash.errors import EcohashError
from ecohash.lab.layout import LabPaths

SUITE = "bookworm"
VARIANT = "minbase"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
# systemd-sysv: minbase has no /sbin/init, and hosts boot systemd so services really run.
# iproute2: without it Ansible's network facts come back empty.
# python3, python3-apt: Ansible's modules (apt in particular) need them.
PACKAGES = (
    "ca-certificates",
    "iproute2",
    "openssh-server",
    "python3",
    "python3-apt",
    "sudo",
    "systemd-sysv",
)
# Bump when finalize() changes, so existing caches are rebuilt.
TWEAKS_VERSION = 1

COMPLETE_MARKER = "ecohash-base.json"

Progress = Callable[[str], None]


def base_key() -> str:
    """A short hash of every input that shapes the base."""
    recipe = json.dumps(
        {
            "suite": SUITE,
            "variant": VARIANT,
            "mirror": DEBIAN_MIRROR,
            "packages": sorted(PACKAGES),
            "tweaks": TWEAKS_VERSION,
        },
        sort_keys=True,
    )
    return hashlib.sha256(recipe.encode()).hexdigest()[:16]


def base_rootfs(paths: LabPaths) -> Path:
    return paths.base_cache / base_key() / "rootfs"


def is_built(paths: LabPaths) -> bool:
    return (base_rootfs(paths).parent / COMPLETE_MARKER).is_file()


def ensure_base(paths: LabPaths, progress: Progress) -> Path:
    """Return the base root filesystem, building it first if no cached one matches."""
    rootfs = base_rootfs(paths)
    if is_built(paths):
        return rootfs
    build_dir = rootfs.parent.with_name(rootfs.parent.name + ".building")
    if build_dir.exists():
        # A build interrupted earlier: nothing is mounted there, the base is never mounted rw.
        shutil.rmtree(build_dir)
    build_dir.mkdir(parents=True)
    progress(f"building the Debian {SUITE} base with debootstrap (about a minute, once)")
    started = time.monotonic()
    process.run(
        [
            "debootstrap",
            f"--variant={VARIANT}",
            f"--include={','.join(PACKAGES)}",
            SUITE,
            build_dir / "rootfs",
            DEBIAN_MIRROR,
        ],
        timeout_s=1800,
    )
    finalize(build_dir / "rootfs")
    (build_dir / COMPLETE_MARKER).write_text(
        json.dumps(
            {
                "key": base_key(),
                "packages": sorted(PACKAGES),
                "build_s": round(time.monotonic() - started, 1),
            }
        )
        + "\n"
    )
    if rootfs.parent.exists():
        shutil.rmtree(rootfs.parent)
    build_dir.rename(rootfs.parent)
    prune_other_bases(paths)
    progress(f"base built in {time.monotonic() - started:.0f} s: {rootfs}")
    return rootfs


def finalize(rootfs: Path) -> None:
    """Make the freshly bootstrapped tree a neutral template that every host personalises."""
    # Each host gets its own SSH host keys and machine id at creation; none may be shared.
    for key in (rootfs / "etc" / "ssh").glob("ssh_host_*"):
        key.unlink()
    (rootfs / "etc" / "machine-id").write_text("")
    dbus_machine_id = rootfs / "var" / "lib" / "dbus" / "machine-id"
    if dbus_machine_id.is_symlink() or dbus_machine_id.exists():
        dbus_machine_id.unlink()
    # Downloaded .debs and package lists would only make every host's view stale and big.
    for leftover in (rootfs / "var" / "cache" / "apt" / "archives").glob("*.deb"):
        leftover.unlink()
    lists = rootfs / "var" / "lib" / "apt" / "lists"
    for entry in lists.iterdir() if lists.is_dir() else []:
        if entry.is_file():
            entry.unlink()
    # Debootstrap copies the build machine's resolver config; hosts have no DNS of their own.
    resolv = rootfs / "etc" / "resolv.conf"
    if resolv.is_symlink() or resolv.exists():
        resolv.unlink()
    resolv.write_text("# lab hosts resolve nothing themselves: apt goes through the lab's proxy\n")
    # Keep installs inside hosts as small as the real minimal installs roles are written for.
    (rootfs / "etc" / "apt" / "apt.conf.d" / "90ecohash-lab").write_text(
        'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n'
    )
    # Units that only make sense on real hardware or would wait for devices forever.
    masked = rootfs / "etc" / "systemd" / "system"
    for unit in ("systemd-udevd.service", "systemd-udev-trigger.service", "getty@tty1.service"):
        link = masked / unit
        if not link.exists() and not link.is_symlink():
            link.symlink_to("/dev/null")


def prune_other_bases(paths: LabPaths) -> None:
    """Remove bases built from an older recipe; the running lab, if any, uses the current one."""
    current = base_rootfs(paths).parent
    for candidate in paths.base_cache.iterdir():
        if candidate != current and candidate.is_dir():
            try:
                shutil.rmtree(candidate)
            except OSError as error:
                raise EcohashError(f"cannot remove old base {candidate}: {error}") from error
