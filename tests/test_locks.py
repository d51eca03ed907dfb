"""Site locks (ecohash.locks): one process changing a site at a time, never left stale."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ecohash.locks import SiteLockedError, lock_file, site_lock


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ECOHASH_STATE_DIR", str(tmp_path))
    return tmp_path


def test_a_second_holder_is_refused_naming_the_first() -> None:
    with site_lock("lab", "provision"):
        with pytest.raises(SiteLockedError) as refused, site_lock("lab", "bootstrap"):
            pass
        assert "site lab is busy: `ecohash provision` by" in str(refused.value)
        assert f"(pid {os.getpid()})" in str(refused.value)
    with site_lock("lab", "provision"):  # released: the next one gets it
        pass
    with site_lock("lab", "provision"), site_lock("other-site", "provision"):
        pass  # sites are independent


def test_a_killed_holder_never_leaves_the_lock_behind(state_dir: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time\nfrom ecohash.locks import site_lock\n"
         "with site_lock('lab', 'provision'):\n    print('held', flush=True)\n    time.sleep(60)\n"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "ECOHASH_STATE_DIR": str(state_dir)},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(SiteLockedError, match=f"pid {holder.pid}"), site_lock("lab", "provision"):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with site_lock("lab", "provision"):  # the kernel released the dead holder's lock
        assert '"command": "provision"' in lock_file("lab").read_text()
