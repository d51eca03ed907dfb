"""The lab's network teardown against the kernel's own timing (root: it makes a real link)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from ecohash import process
from ecohash.errors import EcohashError
from ecohash.lab import network

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="creates a network link: needs root")
LINK = "ecotest-race"


@pytest.fixture
def dummy_link():
    # A veth pair, as the lab makes for each host (this kernel may have no dummy links).
    subprocess.run(["ip", "link", "add", LINK, "type", "veth", "peer", "name", f"{LINK}p"], check=True)
    yield LINK
    subprocess.run(["ip", "link", "delete", LINK], check=False, capture_output=True)


@needs_root
def test_a_link_that_goes_while_it_is_deleted_is_not_an_error(dummy_link, monkeypatch):
    # What a veth does when its pair's namespace is deleted: gone between the look and the delete.
    real_run = process.run

    def vanish_then_fail(command, **kwargs):
        real_run(["ip", "link", "delete", dummy_link])
        return real_run(command, **kwargs)

    monkeypatch.setattr(process, "run", vanish_then_fail)
    network.delete_link(dummy_link)
    assert not Path(f"/sys/class/net/{dummy_link}").exists()


@needs_root
def test_a_link_that_stays_after_a_failed_delete_is_an_error(dummy_link, monkeypatch):
    def refuse(command, **kwargs):
        raise EcohashError("ip link delete: refused")

    monkeypatch.setattr(process, "run", refuse)
    with pytest.raises(EcohashError, match="refused"):
        network.delete_link(dummy_link)
