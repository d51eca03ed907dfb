#!/usr/bin/env python3
"""`ecohash bundle verify` throughput against `sha256sum` over the same blobs.

Builds a bundle of --mib MiB here (a few large blobs, as images and weights are, and many
small ones, as .debs are), then times, --rounds times each, verify_bundle (the signature
and every blob, what `ecohash bundle verify` runs) and `sha256sum` over the same blob
files in one process. Both read from the page cache (the bundle was just written), so the
figure compares hashing and reading code, not the disk; a USB disk is slower than either.
The best round of each counts. Target: verify at least 80% of sha256sum's throughput.

Usage:

    .venv/bin/python bench/bundle_verify.py [--mib 2048] [--rounds 3] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ecohash.bundle import keys
from ecohash.bundle.build import build_bundle
from ecohash.bundle.items import Item
from ecohash.bundle.verify import verify_bundle
from ecohash.paths import project_root

TARGET_RATIO = 0.80
SMALL_BLOB_BYTES = 256 << 10  # a typical .deb's order of size
LARGE_SHARE = 0.9  # of the bytes, in a few large blobs (image layers, weights)


def make_items(source: Path, total_bytes: int) -> list[Item]:
    source.mkdir(parents=True, exist_ok=True)
    sizes = [int(total_bytes * LARGE_SHARE) // 4] * 4
    sizes += [SMALL_BLOB_BYTES] * max(1, (total_bytes - sum(sizes)) // SMALL_BLOB_BYTES)
    items = []
    for index, size in enumerate(sizes):
        path = source / f"blob-{index}"
        with path.open("wb") as file:
            remaining = size
            while remaining:
                chunk = os.urandom(min(remaining, 8 << 20))
                file.write(chunk)
                remaining -= len(chunk)
        items.append(Item("file", f"files/bench/{index}", path))
    return items


def best_of(rounds: int, run) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=2048, help="bundle size in MiB")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, help="where to build it (default: a temporary directory)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=options.workdir) as work:
        root = Path(work)
        key = keys.generate()
        items = make_items(root / "source", options.mib << 20)
        bundle = root / "bundle"
        started = time.perf_counter()
        manifest = build_bundle(items, bundle, standard_file=project_root() / "node-standard.lock.yml",
                                site_name="bench", key=key)
        build_s = time.perf_counter() - started
        blob_files = sorted(str(p) for p in (bundle / "blobs" / "sha256").iterdir())
        total = sum(manifest.blobs().values())
        # Read once so both measured runs start from the same warm page cache.
        subprocess.run(["cat", *blob_files], stdout=subprocess.DEVNULL, check=True)
        verify_s = best_of(options.rounds, lambda: verify_bundle(bundle, key.public))
        sha256sum_s = best_of(options.rounds, lambda: subprocess.run(
            ["sha256sum", *blob_files], stdout=subprocess.DEVNULL, check=True))
    mib = total / (1 << 20)
    ratio = sha256sum_s / verify_s
    print(f"bundle: {len(blob_files)} blobs, {mib:.0f} MiB; "
          f"build {build_s:.2f} s ({mib / build_s:.0f} MiB/s)")
    print(f"verify: {verify_s:.2f} s, {mib / verify_s:.0f} MiB/s (best of {options.rounds})")
    print(f"sha256sum: {sha256sum_s:.2f} s, {mib / sha256sum_s:.0f} MiB/s (best of {options.rounds})")
    verdict = "ok" if ratio >= TARGET_RATIO else "BELOW TARGET"
    print(f"verify / sha256sum throughput: {ratio:.0%} (target >= {TARGET_RATIO:.0%}): {verdict}")
    return 0 if ratio >= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
