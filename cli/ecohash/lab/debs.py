"""Building small Debian packages for the lab's site mirror with dpkg-deb."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ecohash import process


def build_deb(output_dir: Path, file_name: str, control: str, files: dict[str, tuple[str, int]]) -> Path:
    """Build a .deb from a control file and {path in package: (content, mode)}; return its path."""
    output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ecohash-deb-") as staging_name:
        staging = Path(staging_name) / "pkg"
        (staging / "DEBIAN").mkdir(parents=True)
        (staging / "DEBIAN" / "control").write_text(control)
        for relative, (content, mode) in files.items():
            target = staging / relative.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            if relative.endswith("/"):
                target.mkdir(exist_ok=True)
                continue
            target.write_text(content)
            target.chmod(mode)
        for directory in [staging, *staging.rglob("*")]:
            if directory.is_dir():
                directory.chmod(0o755)
        target = output_dir / file_name
        process.run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", staging, target])
    return target
