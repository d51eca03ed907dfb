"""The .debs a set of packages needs on a node, resolved by apt itself in a throwaway root.

The root is made from a Debian root file system (the lab's base): its dpkg status says
what a freshly installed node already has, its sources.list and trusted keys say where
and from whom packages come. apt runs on this machine against a private directory tree
(APT_CONFIG names every path; the host's own apt configuration is never read, and the
base is only read), resolves the closure with `--print-uris`, and reports each .deb's
URL and its SHA256 from the signed index; every download is checked against that hash.
Packages upstream does not carry (NVIDIA's, or the lab's SIMULATED ones) resolve from
local .debs given to it, through a flat repository apt trusts only for this resolution:
their bytes are carried as they are, and the bundle's own signature covers them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from ecohash.bundle.fetch import fetch, sha256_of
from ecohash.errors import EcohashError
from ecohash.standard import PLATFORMS, Platform, is_platform

# `apt-get --print-uris`: 'URI' file-name size SHA256:hex
_URI_LINE = re.compile(r"^'(?P<uri>[^']+)' (?P<file>\S+) (?P<size>\d+) SHA256:(?P<sha256>[0-9a-f]{64})$")
APT_TIMEOUT_S = 600


@dataclass(frozen=True)
class Deb:
    file_name: str  # as the archive names it: name_version_arch.deb
    path: Path  # the local file with its bytes
    sha256: str


def platform_of(root: Path) -> Platform:
    """The node standard's platform key of a root file system ("debian12"), from os-release."""
    fields: dict[str, str] = {}
    for name in ("etc/os-release", "usr/lib/os-release"):
        file = root / name
        if file.is_file():
            for line in file.read_text().splitlines():
                key, _, value = line.partition("=")
                fields[key] = value.strip().strip('"')
            break
    distribution, version = fields.get("ID", ""), fields.get("VERSION_ID", "")
    if not distribution or not version:
        raise EcohashError(f"{root}: no ID and VERSION_ID in etc/os-release; not a root file system?")
    platform = distribution + version.replace(".", "")
    if not is_platform(platform):
        raise EcohashError(f"{root}: {platform} is not a platform ecohash builds nodes on "
                           f"({', '.join(PLATFORMS)})")
    return platform


def resolve(base: Path, packages: Sequence[str], work: Path, *, local_debs: Sequence[Path] = (),
            proxy: str | None = None) -> list[Deb]:
    """Every .deb apt would install for `packages` (apt names, name=version pins) on `base`."""
    root = work / "root"
    _make_root(base, root, local_debs, proxy)
    _apt(root, ["update"], what="refresh the package index")
    output = _apt(root, ["install", "--print-uris", "-qq", *packages],
                  what=f"resolve {' '.join(packages)}")
    debs = []
    for line in output.splitlines():
        match = _URI_LINE.match(line)
        if not match:
            continue
        uri, file_name, sha256 = match["uri"], match["file"], match["sha256"]
        if uri.startswith("file:"):
            path = Path(unquote(urlparse(uri).path)).resolve()
            if sha256_of(path) != sha256:
                raise EcohashError(f"{path} changed while resolving packages: refused")
        else:
            path = fetch(uri, work / "debs" / file_name, sha256, what=file_name, proxy=proxy)
        debs.append(Deb(file_name=file_name, path=path, sha256=sha256))
    return debs


def _make_root(base: Path, root: Path, local_debs: Sequence[Path], proxy: str | None) -> None:
    if root.exists():
        shutil.rmtree(root)
    for directory in ("etc/apt/apt.conf.d", "etc/apt/preferences.d", "etc/apt/sources.list.d",
                      "var/lib/dpkg", "var/lib/apt/lists/partial", "var/cache/apt/archives/partial"):
        (root / directory).mkdir(parents=True)
    for name in ("var/lib/dpkg/status", "etc/apt/sources.list"):
        source = base / name
        if source.is_file():
            shutil.copyfile(source, root / name)
    trusted = base / "etc/apt/trusted.gpg.d"
    if trusted.is_dir():
        shutil.copytree(trusted, root / "etc/apt/trusted.gpg.d")
    for sources in (base / "etc/apt/sources.list.d").glob("*"):
        shutil.copyfile(sources, root / "etc/apt/sources.list.d" / sources.name)
    if local_debs:
        local = root / "local"
        local.mkdir()
        for deb in local_debs:
            (local / deb.name).symlink_to(deb.resolve())
        packages = subprocess.run(["dpkg-scanpackages", "--multiversion", "."], cwd=local,
                                  capture_output=True, text=True, check=False)
        if packages.returncode != 0:
            raise EcohashError(f"cannot index the local .debs: {packages.stderr.strip()}")
        (local / "Packages").write_text(packages.stdout)
        (root / "etc/apt/sources.list.d/ecohash-local.list").write_text(
            f"deb [trusted=yes] file:{local} ./\n"
        )
    settings = {
        "Dir": f"{root}/",
        "Dir::Etc::parts": f"{root}/etc/apt/apt.conf.d",
        "Dir::Etc::main": f"{root}/etc/apt/apt.conf",
        "Dir::State::status": f"{root}/var/lib/dpkg/status",
        "APT::Architecture": "amd64",
        # The roles install without recommends (apt_packages_install_recommends: false).
        "APT::Install-Recommends": "false",
        "APT::Install-Suggests": "false",
        "APT::Sandbox::User": "root",
        "Acquire::ForceHash": "SHA256",
        "Acquire::Languages": "none",
        "Debug::NoLocking": "true",
        "Acquire::http::Proxy": proxy or "DIRECT",
    }
    (root / "apt.conf").write_text("".join(f'{key} "{value}";\n' for key, value in settings.items()))


def _apt(root: Path, arguments: list[str], *, what: str) -> str:
    try:
        result = subprocess.run(["apt-get", *arguments], env={"APT_CONFIG": str(root / "apt.conf"),
                                                             "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                                capture_output=True, text=True, timeout=APT_TIMEOUT_S, check=False)
    except FileNotFoundError:
        raise EcohashError("apt-get is not installed: resolving packages needs Debian's apt") from None
    except subprocess.TimeoutExpired:
        raise EcohashError(f"apt-get did not {what} within {APT_TIMEOUT_S} s") from None
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        errors = [line[3:] for line in lines if line.startswith(("E: ", "W: Failed to fetch"))]
        reasons = "; ".join(errors or lines[-1:] or ["no output"])
        raise EcohashError(f"apt could not {what}: {reasons}")
    return result.stdout
