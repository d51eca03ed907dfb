#!/usr/bin/env python3
"""The lab's own bundle: its size, and how long `lab up` takes to build, verify and load it.

Runs `ecohash lab up` --rounds times per mode, online (the bundle carries what the base has
no source for: the SIMULATED driver and toolkit, containerd and runc, k3s, the lab's image)
and offline (every package the roles install, with the dependencies apt resolves in the
base), and reads the figures `up` records (`lab status --json`, `bundle`). Loads include
their own verify, as `ecohash bundle load` does. The median round counts. The apt proxy's
cache is warm after the first offline round, so downloads are not what is timed. Leaves the
lab down. Needs root, like the lab.

Usage:

    sudo .venv/bin/python bench/lab_bundle.py [--rounds 3] [--nodes 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys

from ecohash import lab
from ecohash.lab.mirror import BundleFigures

MODES = {"online": False, "offline": True}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=1, help="lab hosts (the bundle does not depend on it)")
    options = parser.parse_args()
    try:
        for mode, offline in MODES.items():
            rounds = []
            for _ in range(options.rounds):
                status = lab.up(nodes=options.nodes, containers=1, offline=offline)
                assert status.bundle is not None, "lab up recorded no bundle figures"
                rounds.append(BundleFigures(**status.bundle))
            median = {name: statistics.median(getattr(r, name) for r in rounds)
                      for name in ("collect_s", "build_s", "verify_s", "load_s")}
            first = rounds[0]
            print(f"{mode:<7}: {first.blobs} blobs ({first.debs} .debs), {first.bytes / 2**20:.1f} MiB; "
                  f"collect {median['collect_s']:.2f} s, build {median['build_s']:.2f} s, "
                  f"verify {median['verify_s']:.2f} s, "
                  f"load {median['load_s']:.2f} s (median of {options.rounds})")
    finally:
        lab.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
