"""The Python wheels a site-local executor needs, at the versions and hashes requirements.lock pins.

The subset is derived from the lock itself: its `# via` annotations say which package
pulled in which, so the executor's packages (ansible-core, ansible-runner) and everything
they pulled in, transitively, are taken with their pins and hashes exactly as the lock
writes them. pip then downloads with --require-hashes and binary wheels only, for the
Python the lock was compiled for and the nodes' platform, so nothing is built here.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ecohash.errors import EcohashError
from ecohash.paths import project_root

LOCK_FILE_NAME = "requirements.lock"
EXECUTOR_PACKAGES = ("ansible-core", "ansible-runner")
# Debian 12's glibc (the nodes' and the lab base's), on x86_64.
GLIBC = (2, 36)
# Every manylinux tag that glibc runs; pip does not expand --platform to older ones itself.
PLATFORMS = tuple(f"manylinux_{GLIBC[0]}_{minor}_x86_64" for minor in range(17, GLIBC[1] + 1))
PIP_TIMEOUT_S = 600

_REQUIREMENT = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==")
_PYTHON_VERSION = re.compile(r"--python-version (\d+\.\d+)")


@dataclass(frozen=True)
class Pin:
    name: str  # normalised (PEP 503)
    text: str  # the lock's lines for it, with --hash options, without comments
    via: tuple[str, ...]  # normalised names of what pulled it in


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(lock: Path) -> tuple[dict[str, Pin], str]:
    """The lock's pins by name, and the Python version it was compiled for."""
    try:
        text = lock.read_text()
    except OSError as error:
        raise EcohashError(f"{lock}: cannot read: {error.strerror or error}") from None
    version = _PYTHON_VERSION.search(text)
    pins: dict[str, Pin] = {}
    name = ""
    lines: list[str] = []
    via: list[str] = []
    for line in [*text.splitlines(), ""]:
        match = _REQUIREMENT.match(line)
        stripped = line.strip()
        if match or not stripped:
            if name:
                pins[name] = Pin(name, "\n".join(lines) + "\n", tuple(via))
            name, lines, via = (normalise(match["name"]), [line], []) if match else ("", [], [])
        elif name and stripped.startswith("--hash"):
            lines.append(line)
        elif name and stripped.startswith("#"):
            # "# via jinja2", or "# via" with one "#   name" per line after it.
            source = stripped.lstrip("# ").removeprefix("via").strip()
            # "ecohash (pyproject.toml)" and "-r file" are roots, not packages.
            if source and "(" not in source and not source.startswith("-r"):
                via.append(normalise(source))
    return pins, version[1] if version else f"{sys.version_info.major}.{sys.version_info.minor}"


def executor_pins(pins: dict[str, Pin]) -> list[Pin]:
    """The executor's packages and everything the lock says they pulled in."""
    wanted = {normalise(name) for name in EXECUTOR_PACKAGES}
    missing = wanted - pins.keys()
    if missing:
        raise EcohashError(f"{LOCK_FILE_NAME} pins no {', '.join(sorted(missing))}")
    grew = True
    while grew:
        pulled = {pin.name for pin in pins.values() if wanted & set(pin.via)}
        grew = not pulled <= wanted
        wanted |= pulled
    return [pins[name] for name in sorted(wanted)]


def executor_requirements(lock: Path | None = None) -> str:
    """The executor's pins as a pip requirements file, each with the lock's hashes: what the
    bundle downloads, and what the executor role installs with --require-hashes."""
    pins, _python_version = read_lock(lock or project_root() / LOCK_FILE_NAME)
    return "".join(pin.text for pin in executor_pins(pins))


def download(work: Path, lock: Path | None = None) -> list[Path]:
    """The executor's wheels, downloaded by pip into work/wheels and checked against the lock."""
    lock = lock or project_root() / LOCK_FILE_NAME
    _pins, python_version = read_lock(lock)
    requirements = work / "executor-requirements.txt"
    requirements.parent.mkdir(parents=True, exist_ok=True)
    requirements.write_text(executor_requirements(lock))
    target = work / "wheels"
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes",
               "--only-binary=:all:", *[f"--platform={tag}" for tag in PLATFORMS],
               "--python-version", python_version, "--implementation", "cp",
               "--dest", str(target), "-r", str(requirements)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise EcohashError(f"pip did not download the executor's wheels within {PIP_TIMEOUT_S} s") from None
    if result.returncode != 0:
        errors = [line.strip() for line in result.stderr.splitlines()
                  if line.startswith("ERROR") and "Ignored the following" not in line]
        raise EcohashError(f"pip cannot download the executor's wheels ({lock}): "
                           f"{'; '.join(errors) or result.stderr.strip()[-500:]}")
    return sorted(target.glob("*.whl"))
