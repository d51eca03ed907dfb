"""GPU nodes for curtailment tests, in process: each behaves as ecohash-gpu-power on the lab's
SIMULATED driver (draw = min(demand, enforced limit), an energy counter, an override with
its end), and a test can cut one off or make one ignore its cap.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ecohash.budget import Plan
from ecohash.grid.nodes import GpuReading, NodeCommandFailed, NodeUnreachable, ReadBack


@dataclass
class SimNode:
    gpus: int
    planned_w: int
    min_w: int
    limit_w: float
    demand_w: float
    override: dict[str, Any] | None = None
    energy_mj: int = 0
    ignores_caps: bool = False  # a GPU a BMC holds at its limit: -pl returns, nothing changes

    def apply(self, cap: int) -> None:
        if not self.ignores_caps:
            self.limit_w = float(cap)

    def read_back(self, name: str) -> ReadBack:
        self.energy_mj += int(min(self.demand_w, self.limit_w) * 1000)  # a second at this draw
        gpus = tuple(GpuReading(i, self.limit_w, self.limit_w, min(self.demand_w, self.limit_w), self.energy_mj)
                     for i in range(self.gpus))
        now = time.time()
        return ReadBack(name, now, now, self.planned_w, self.override, gpus)


@dataclass
class SimulatedNodes:
    """A NodeLink over SimNodes; `calls` records (node, arguments) in the order they came."""

    nodes: dict[str, SimNode]
    unreachable: set[str] = field(default_factory=set)
    timeout_s: float = 0.0  # how long an unreachable node takes to be found so
    found_down: set[str] = field(default_factory=set)  # as SshLink: reads of these fail at once
    calls: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    closed: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def of(cls, plan: Plan, demand_w: float | None = None) -> SimulatedNodes:
        nodes = {}
        for node_plan in plan.nodes:
            node = node_plan.node
            if node.gpu is None or node_plan.gpu_cap_w is None:
                continue
            nodes[node.name] = SimNode(node.gpus, node_plan.gpu_cap_w, node.gpu.min_cap_w,
                                       float(node_plan.gpu_cap_w),
                                       demand_w if demand_w is not None else float(node.gpu.tdp_w))
        return cls(nodes)

    def run(self, node: str, arguments: Sequence[str]) -> ReadBack:
        with self._lock:
            self.calls.append((node, tuple(arguments)))
        if node in self.unreachable:
            if not (node in self.found_down and tuple(arguments) == ("read",)):
                time.sleep(self.timeout_s)
            self.found_down.add(node)
            raise NodeUnreachable("connection timed out after 10 s")
        sim = self.nodes[node]
        mode, options = arguments[0], dict(zip(arguments[1::2], arguments[2::2], strict=True))
        if mode == "curtail":
            cap = int(options["--cap"])
            if not sim.min_w <= cap <= sim.planned_w:
                raise NodeCommandFailed(f"exit status 2: --cap {cap}: outside the GPUs' range")
            sim.override = {"event": options["--event"], "cap_w": cap, "until": int(options["--until"]),
                            "set_at": int(time.time())}
            sim.apply(cap)
        elif mode == "release" and "--cap" in options and sim.override is not None:
            sim.override = {**sim.override, "cap_w": int(options["--cap"])}
            sim.apply(int(options["--cap"]))
        elif mode == "release":
            sim.override = None
            sim.apply(sim.planned_w)
        elif mode != "read":
            raise AssertionError(f"unknown mode {arguments}")
        return sim.read_back(node)

    def close(self) -> None:
        self.closed = True

    def modes(self) -> list[tuple[str, ...]]:
        return [arguments for _, arguments in self.calls if arguments[0] != "read"]
