"""The lab's record: what `down` reads back to remove exactly what `up` made."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecohash.errors import InvalidInputError
from ecohash.lab import state
from ecohash.lab.state import HostRecord, LabRecord
from ecohash.process import TrackedProcess


def host(name: str, index: int, address: str) -> HostRecord:
    return HostRecord(name=name, index=index, address=address, container="", sku="",
                      netns=f"ecolab-{name}", veth=f"ecolab-h{index:03d}", directory=f"/lab/{name}",
                      process=TrackedProcess(pid=100 + index, start_ticks=7))


def test_the_executor_is_recorded_apart_from_the_nodes_and_read_back(tmp_path: Path) -> None:
    record = LabRecord(hosts=[host("c01-r01-n01", 0, "10.213.0.11")],
                       executor=host("lab-executor", 1, "10.213.0.250"))
    state.save(tmp_path / "state.json", record)
    loaded = state.load(tmp_path / "state.json")
    assert loaded == record
    assert [h.name for h in loaded.hosts] == ["c01-r01-n01"]
    # down stops, and ssh reaches, every machine; node lists stay nodes only.
    assert [h.name for h in loaded.machines] == ["c01-r01-n01", "lab-executor"]
    assert loaded.host("lab-executor").address == "10.213.0.250"


def test_a_lab_without_an_executor_reads_back_without_one(tmp_path: Path) -> None:
    state.save(tmp_path / "state.json", LabRecord(hosts=[host("c01-r01-n01", 0, "10.213.0.11")]))
    loaded = state.load(tmp_path / "state.json")
    assert loaded.executor is None
    assert [h.name for h in loaded.machines] == ["c01-r01-n01"]
    with pytest.raises(InvalidInputError, match="no lab host 'lab-executor'; lab hosts: c01-r01-n01"):
        loaded.host("lab-executor")
