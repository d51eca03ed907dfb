"""The executor's wheels: the lock's subset, derived from its via annotations, downloaded by hash."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from ecohash.bundle import wheels
from ecohash.errors import EcohashError
from ecohash.paths import project_root

LOCK = project_root() / "requirements.lock"


def test_the_subset_is_the_executors_closure_in_the_lock() -> None:
    pins, python_version = wheels.read_lock(LOCK)
    assert python_version == "3.11"
    names = [pin.name for pin in wheels.executor_pins(pins)]
    # Pulled in by ansible-core (jinja2), by jinja2 (markupsafe), by ansible-runner (pexpect).
    assert {"ansible-core", "ansible-runner", "jinja2", "markupsafe", "pexpect", "ptyprocess"} <= set(names)
    # In the lock, but for ecohash's own CLI and the lab, not the executor.
    assert "pulumi" not in names and "openleadr" not in names and "pytest" not in names


@pytest.mark.slow
def test_wheels_download_by_the_locks_hashes(tmp_path: Path) -> None:
    downloaded = wheels.download(tmp_path)
    pins, _ = wheels.read_lock(LOCK)
    assert {wheels.normalise(path.name.split("-")[0]) for path in downloaded} == {
        pin.name for pin in wheels.executor_pins(pins)}
    for path in downloaded:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        pin = pins[wheels.normalise(path.name.split("-")[0])]
        assert f"--hash=sha256:{digest}" in pin.text


@pytest.mark.slow
def test_a_hash_the_lock_does_not_pin_is_refused(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.lock"
    text = LOCK.read_text()
    block = re.search(r"^resolvelib==.*?(?=^\S)", text, re.S | re.M)
    assert block
    lock.write_text(text.replace(block[0], re.sub(r"sha256:[0-9a-f]{64}", "sha256:" + "0" * 64, block[0])))
    with pytest.raises(EcohashError, match="pip cannot download the executor's wheels .*(HASH|hash)"):
        wheels.download(tmp_path / "work", lock)
