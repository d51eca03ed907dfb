"""Local .debs a build is given for packages no upstream it can reach carries (`bundle build --deb`).

A file on a disk or a share is not trusted for what it says it is: each one is copied into
the build's own work directory first (so what is checked is what gets carried, whatever
happens to the original afterwards), then its control fields are read with dpkg-deb and
checked against the node standard. A local .deb may only stand in for a package the
standard pins, at the pinned version and an architecture the nodes run: anything else could
shadow a package of the distribution's signed archive, so it is refused, naming the file.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import stat
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ecohash.errors import InvalidInputError
from ecohash.standard import NodeStandard

# apt resolves the closure for amd64 nodes (apt_closure); "all" packages run anywhere.
NODE_ARCHITECTURES = ("amd64", "all")
BLOCK = 1 << 20
DPKG_DEB_TIMEOUT_S = 60
# Debian policy 5.6.1, 5.6.12 and dpkg-architecture's names.
_FIELD_SYNTAX = {"Package": re.compile(r"[a-z0-9][a-z0-9.+-]+"),
                 "Version": re.compile(r"(\d+:)?[0-9][A-Za-z0-9.+~-]*"),
                 "Architecture": re.compile(r"[a-z0-9][a-z0-9-]*")}


class LocalDebError(InvalidInputError):
    """A local .deb given to a build is unreadable, not a .deb, or not what the standard pins."""


@dataclass(frozen=True)
class Pin:
    version: str
    sha256: str | None  # where the standard pins the file's bytes too (containerd, runc)
    why: str  # which part of the standard pins it, for the message


@dataclass(frozen=True)
class CheckedDeb:
    given: Path  # the file as the operator named it
    path: Path  # the private copy that is carried
    package: str
    version: str
    sha256: str


def check(standard: NodeStandard, platform: str, given: Sequence[Path], work: Path) -> list[CheckedDeb]:
    """Every .deb in `given` (files, or directories of *.deb), copied into `work` and checked
    against the standard's pins for `platform`; the first that fails is one line, exit 2."""
    files = expand(given)
    work.mkdir(parents=True, exist_ok=True)
    checked: dict[str, CheckedDeb] = {}
    for file in files:
        deb = _check_one(standard, platform, file, work)
        other = checked.get(deb.path.name)
        if other is not None and other.sha256 != deb.sha256:
            raise LocalDebError(f"{file}: {deb.package} {deb.version} is also {other.given}, with other "
                                "bytes; refused: give one of them")
        checked[deb.path.name] = deb
    return sorted(checked.values(), key=lambda deb: deb.path.name)


def expand(given: Sequence[Path]) -> list[Path]:
    """The files named: a file as it is, a directory as the *.deb files directly in it."""
    files: list[Path] = []
    for path in given:
        if path.is_dir():
            found = sorted(entry for entry in path.iterdir() if entry.name.endswith(".deb"))
            if not found:
                raise LocalDebError(f"{path}: no .deb files in this directory")
            files += found
        else:
            files.append(path)
    return files


def pins(standard: NodeStandard, platform: str) -> dict[str, Pin]:
    """Package name -> what the standard pins for it on `platform`, by name."""
    named: dict[str, Pin] = {}
    driver, toolkit = standard.nvidia_driver, standard.nvidia_container_toolkit
    for name in driver.packages.get(platform, []):  # type: ignore[call-overload]
        named[name] = Pin(driver.apt_version, None, "nvidia_driver.apt_version")
    for name in toolkit.packages:
        named[name] = Pin(toolkit.version, None, "nvidia_container_toolkit.version")
    for name, pinned in standard.containerd.get(platform, {}).items():  # type: ignore[call-overload]
        named[name] = Pin(pinned.version, pinned.sha256, f"containerd.{platform}.{name}")
    return named


def pin_of(standard: NodeStandard, platform: str, package: str) -> Pin | None:
    """The pin a package is held to: by name, else by the driver's apt pin pattern, which the
    nodes' apt preferences hold to the driver's version (roles/nvidia_driver)."""
    named = pins(standard, platform).get(package)
    if named is not None:
        return named
    driver = standard.nvidia_driver
    if any(fnmatch.fnmatchcase(package, pattern) for pattern in driver.pin_packages.split()):
        return Pin(driver.apt_version, None, "nvidia_driver.pin_packages")
    return None


def _check_one(standard: NodeStandard, platform: str, file: Path, work: Path) -> CheckedDeb:
    copy, sha256 = _copy_regular_file(file, work)
    try:
        package, version, architecture = _control(file, copy)
        pin = pin_of(standard, platform, package)
        if pin is None:
            raise LocalDebError(f"{file}: {package} {version} is no package the node standard pins; refused "
                                "(a local .deb stands in only for a pinned package: the rest comes from the "
                                "distribution's signed archive)")
        if version != pin.version:
            raise LocalDebError(f"{file}: {package} is version {version}, the node standard pins "
                                f"{pin.version} ({pin.why}); refused")
        if architecture not in NODE_ARCHITECTURES:
            raise LocalDebError(f"{file}: {package} {version} is for {architecture}, the nodes are "
                                f"{' or '.join(NODE_ARCHITECTURES)}; refused")
        if pin.sha256 is not None and sha256 != pin.sha256:
            raise LocalDebError(f"{file}: {package} {version} has sha256 {sha256}, the node standard pins "
                                f"{pin.sha256} ({pin.why}); refused")
    except LocalDebError:
        copy.unlink()
        raise
    # Debian's own file name (no epoch), whatever the operator called the file.
    target = work / f"{package}_{version.split(':', 1)[-1]}_{architecture}.deb"
    copy.rename(target)
    return CheckedDeb(given=file, path=target, package=package, version=version, sha256=sha256)


def _copy_regular_file(file: Path, work: Path) -> tuple[Path, str]:
    # Opened without blocking and checked on the open descriptor: a FIFO, a device or a
    # socket on a share is refused before a byte is read, and cannot be swapped in between.
    try:
        descriptor = os.open(file, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as error:
        raise LocalDebError(f"{file}: cannot read it as a .deb: {error.strerror or error}") from None
    copy = work / f".{file.name}.checking"
    digest = hashlib.sha256()
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise LocalDebError(f"{file}: not a regular file; refused (give .deb files or directories)")
        with os.fdopen(descriptor, "rb", closefd=False) as source, open(copy, "wb") as out:
            for block in iter(lambda: source.read(BLOCK), b""):
                digest.update(block)
                out.write(block)
    except OSError as error:
        copy.unlink(missing_ok=True)
        raise LocalDebError(f"{file}: cannot read it as a .deb: {error.strerror or error}") from None
    finally:
        os.close(descriptor)
    return copy, digest.hexdigest()


def _control(file: Path, copy: Path) -> tuple[str, str, str]:
    try:
        result = subprocess.run(["dpkg-deb", "--field", str(copy), "Package", "Version", "Architecture"],
                                capture_output=True, text=True, errors="replace", check=False,
                                timeout=DPKG_DEB_TIMEOUT_S)
    except FileNotFoundError:
        raise LocalDebError("dpkg-deb is not installed: checking local .debs needs Debian's dpkg") from None
    except subprocess.TimeoutExpired:
        raise LocalDebError(f"{file}: not a readable .deb: dpkg-deb did not read its control within "
                            f"{DPKG_DEB_TIMEOUT_S} s") from None
    fields = dict(line.split(": ", 1) for line in result.stdout.splitlines() if ": " in line)
    package, version, architecture = (fields.get(name, "") for name in _FIELD_SYNTAX)
    values = (package, version, architecture)
    if result.returncode != 0 or not all(values):
        reason = (result.stderr.strip().splitlines() or ["no Package, Version and Architecture"])[-1]
        reason = reason.removeprefix("dpkg-deb: error: ").strip()
        raise LocalDebError(f"{file}: not a readable .deb: {reason}")
    # The fields name the file it is carried as, and a path in the mirror: Debian's syntax only.
    for (name, syntax), value in zip(_FIELD_SYNTAX.items(), values, strict=True):
        if not syntax.fullmatch(value):
            raise LocalDebError(f"{file}: not a readable .deb: its {name} field {value!r} is not Debian's "
                                f"syntax")
    return values
