"""Mounts the lab makes on this machine, found from /proc/self/mountinfo.

os.path.ismount cannot see a bind mount of a directory onto itself (iproute2 makes
/run/netns one), so the kernel's mount table is the only reliable answer.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from ecohash import process
from ecohash.errors import EcohashError


def mount_points() -> list[Path]:
    """Every mount point in this mount namespace, with octal escapes decoded."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        raw = line.split()[4]
        points.append(Path(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), raw)))
    return points


def is_mount_point(path: Path) -> bool:
    return path in mount_points()


def mounts_under(directory: Path) -> list[Path]:
    """Mount points at or below `directory` in this mount namespace, deepest first."""
    prefix = str(directory.resolve()).rstrip("/")
    found = [
        point
        for point in mount_points()
        if str(point) == prefix or str(point).startswith(prefix + "/")
    ]
    return sorted(set(found), key=lambda p: len(p.parts), reverse=True)


def unmount_all_under(directory: Path) -> None:
    """Unmount everything under `directory`, repeating until nothing is mounted there."""
    for _attempt in range(10):
        mounted = mounts_under(directory)
        if not mounted:
            return
        for mount_point in mounted:
            try:
                process.run(["umount", mount_point])
            except EcohashError:
                time.sleep(0.2)
    mounted = mounts_under(directory)
    if mounted:
        raise EcohashError(f"still mounted after 10 tries: {', '.join(map(str, mounted))}")


def remove_tree(directory: Path) -> None:
    """Delete a directory without ever crossing into a file system mounted inside it."""
    if directory.exists():
        if mounts_under(directory):
            raise EcohashError(f"refusing to delete {directory}: something is still mounted in it")
        process.run(["rm", "-rf", "--one-file-system", directory])
