"""Builds `nvidia-container-toolkit-sim`: a SIMULATED NVIDIA container runtime for lab hosts.

The real toolkit's runtime injects GPUs into containers and then runs runc. Lab hosts
have no GPU, so this stand-in's `nvidia-container-runtime` says it is simulated on
stderr and hands everything to runc, which keeps containerd's configuration (the part
the container_runtime role owns) exactly the production one.

The mirror carries two builds of it: the lab standard's, and a later one that lab tests
roll the standard forward to and back from, as a site rolls back a node standard (apt
must then downgrade a held package).
"""

from __future__ import annotations

from pathlib import Path

from ecohash.lab.debs import build_deb

PACKAGE_NAME = "nvidia-container-toolkit-sim"
UPSTREAM_VERSION = "1.17.8"
PACKAGE_VERSION = f"{UPSTREAM_VERSION}-1~ecohashsim1"
LATER_PACKAGE_VERSION = f"{UPSTREAM_VERSION}-1~ecohashsim2"
VERSIONS = (PACKAGE_VERSION, LATER_PACKAGE_VERSION)

CONTROL = f"""\
Package: {PACKAGE_NAME}
Version: {{version}}
Architecture: all
Maintainer: ecohash lab <lab@ecohash.invalid>
Section: contrib/admin
Priority: optional
Depends: runc
Provides: nvidia-container-runtime
Description: SIMULATED NVIDIA container toolkit {UPSTREAM_VERSION} for ecohash lab hosts (no GPU)
 SIMULATED. Not NVIDIA's toolkit. nvidia-container-runtime passes every call to
 runc without injecting GPUs; nvidia-ctk only reports its version. Built by
 `ecohash lab up` for the lab's site mirror; never install it on a real node.
"""

RUNTIME = """\
#!/bin/sh
# SIMULATED nvidia-container-runtime (ecohash lab): no GPU to inject; runs runc.
exec runc "$@"
"""

CTK = f"""\
#!/bin/sh
# SIMULATED nvidia-ctk (ecohash lab).
case "$1" in
  --version|-v)
    echo "NVIDIA Container Toolkit CLI version {UPSTREAM_VERSION} (SIMULATED by the ecohash lab)";;
  *) echo "nvidia-ctk: SIMULATED by the ecohash lab; only --version is supported" >&2; exit 1;;
esac
"""


def deb_file_name(version: str) -> str:
    return f"{PACKAGE_NAME}_{version}_all.deb"


def build(output_dir: Path, versions: tuple[str, ...] = VERSIONS) -> list[Path]:
    """Build `versions` (default every one) into `output_dir` with dpkg-deb; return the .debs' paths."""
    return [
        build_deb(
            output_dir,
            deb_file_name(version),
            CONTROL.format(version=version),
            {
                "/usr/bin/nvidia-container-runtime": (RUNTIME, 0o755),
                "/usr/bin/nvidia-ctk": (CTK, 0o755),
            },
        )
        for version in versions
    ]
