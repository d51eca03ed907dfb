"""Builds `nvidia-driver-sim`, the SIMULATED NVIDIA driver package the lab's mirror serves.

The package installs a simulated `nvidia-smi` (nvidia_smi_sim.py, stdlib-only Python) that
answers from the host's simulated hardware. Its name, version suffix and description say
it is simulated, so nobody mistakes it for the real driver.
"""

from __future__ import annotations

from pathlib import Path

from ecohash.lab import nvidia_smi_sim
from ecohash.lab.debs import build_deb

PACKAGE_NAME = "nvidia-driver-sim"
PACKAGE_VERSION = f"{nvidia_smi_sim.DRIVER_VERSION}-1~ecohashsim1"
ARCHITECTURE = "all"

CONTROL = f"""\
Package: {PACKAGE_NAME}
Version: {PACKAGE_VERSION}
Architecture: {ARCHITECTURE}
Maintainer: ecohash lab <lab@ecohash.invalid>
Section: non-free/libs
Priority: optional
Depends: python3
Provides: nvidia-smi
Description: SIMULATED NVIDIA driver {nvidia_smi_sim.DRIVER_VERSION} for ecohash lab hosts (no GPU)
 SIMULATED. Not the NVIDIA driver. Installs an nvidia-smi that answers queries,
 persistence mode and power limits from the simulated hardware the ecohash lab
 writes into each host (/etc/ecohash-sim/gpus.json). Built by `ecohash lab up`
 for the lab's site mirror; never install it on a real node.
"""


def deb_file_name() -> str:
    return f"{PACKAGE_NAME}_{PACKAGE_VERSION}_{ARCHITECTURE}.deb"


def build(output_dir: Path) -> Path:
    """Build the package into `output_dir` with dpkg-deb and return the .deb's path."""
    return build_deb(
        output_dir,
        deb_file_name(),
        CONTROL,
        {
            "/usr/bin/nvidia-smi": (Path(nvidia_smi_sim.__file__).read_text(), 0o755),
            # Where the simulated driver keeps settings across invocations, as the real one
            # does until reboot; owned by the package so purging it removes them.
            f"/var/lib/{PACKAGE_NAME}/": ("", 0o755),
            f"/usr/share/doc/{PACKAGE_NAME}/README.simulated": (
                "This is a SIMULATED NVIDIA driver built by the ecohash lab. There is no GPU.\n",
                0o644,
            ),
        },
    )
