"""Evidence: rounds of every node's readings, kept as samples.jsonl, with silent nodes counted conservatively."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

from ecohash.grid.evidence import Evidence, NodeFacts, Sampler, read_samples
from ecohash.grid.nodes import NodeUnreachable
from tests.grid.simnodes import SimulatedNodes
from tests.grid.sites import grid_plan


def evidence(tmp_path: Path, nodes: SimulatedNodes) -> Evidence:
    plan = grid_plan()
    facts = {n.node.name: NodeFacts(n.node.container, n.node.gpus, n.node.host_w, n.gpu_cap_w) for n in plan.nodes}
    return Evidence(nodes, tmp_path / "samples.jsonl", facts, other_host_w=500)


def test_a_round_sums_measured_gpu_draw_and_planned_host_w_per_container(tmp_path: Path) -> None:
    nodes = SimulatedNodes.of(grid_plan(), demand_w=400)
    taken = evidence(tmp_path, nodes).sample()
    # 4 nodes per container: 4 x (2000 + 8 x 400); plus 500 W of hosts without GPUs.
    assert taken.container_draw_w == {"c01": 20800, "c02": 20800, "c03": 20800}
    assert taken.it_draw_w == 3 * 20800 + 500
    assert taken.estimated == []
    line = json.loads((tmp_path / "samples.jsonl").read_text())
    assert line["nodes"]["c01-r01-n01"]["gpus"][0] == {
        "index": 0, "limit_w": 700.0, "enforced_w": 700.0, "draw_w": 400.0, "energy_mj": 400000}
    assert stat.S_IMODE((tmp_path / "samples.jsonl").stat().st_mode) == 0o600


def test_a_silent_node_counts_at_its_last_draw_else_at_its_cap(tmp_path: Path) -> None:
    nodes = SimulatedNodes.of(grid_plan(), demand_w=400)
    kept = evidence(tmp_path, nodes)
    nodes.unreachable.add("c01-r01-n01")
    first = kept.sample()
    assert first.estimated == ["c01-r01-n01"]
    assert first.container_draw_w["c01"] == 3 * 5200 + 2000 + 8 * 700  # never read: its cap, flat out
    assert first.nodes["c01-r01-n01"] == {"error": "unreachable: connection timed out after 10 s"}
    nodes.unreachable.clear()
    kept.sample()
    nodes.unreachable.add("c01-r01-n01")
    third = kept.sample()
    assert third.container_draw_w["c01"] == 4 * 5200  # its last draw
    assert [r["estimated"] for r in read_samples(tmp_path / "samples.jsonl")] == [["c01-r01-n01"], [],
                                                                                    ["c01-r01-n01"]]


def test_the_sampler_samples_until_stopped_and_wakes_on_request(tmp_path: Path) -> None:
    nodes = SimulatedNodes.of(grid_plan())
    kept = evidence(tmp_path, nodes)
    with Sampler(kept, interval_s=30) as sampler:
        deadline = time.monotonic() + 5
        while not kept.rounds and time.monotonic() < deadline:
            time.sleep(0.01)
        sampler.wake()
        while len(kept.rounds) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert len(kept.rounds) == 2  # one at once, one woken; the 30 s interval never passed


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "samples.jsonl"
    path.write_text('{"t": 1}\n{"t": 2, "ph')
    assert read_samples(path) == [{"t": 1}]
    assert read_samples(tmp_path / "none.jsonl") == []


def test_an_unreachable_node_raises_nothing_into_the_round(tmp_path: Path) -> None:
    class Broken(SimulatedNodes):
        def run(self, node, arguments):
            raise NodeUnreachable("no route to host") if node.startswith("c02") else RuntimeError("odd")

    nodes = Broken.of(grid_plan())
    taken = evidence(tmp_path, nodes).sample()
    assert len(taken.estimated) == 12
    assert taken.nodes["c02-r01-n01"]["error"] == "unreachable: no route to host"
    assert taken.nodes["c01-r01-n01"]["error"] == "failed unexpectedly: RuntimeError: odd"
