"""Evidence of a curtailment: every GPU's draw, enforced limit and energy counter, sampled.

While a curtail command runs, every GPU node is read in parallel every few seconds
(`ecohash-gpu-power read`, over the command's own connections) and each round is one line
of the event's samples.jsonl; `curtail status` and `curtail release` add theirs. A round's
measured IT draw is the GPUs' measured draw plus every node's host_w from the site file: GPU
telemetry is what nodes can measure (NVML), hosts are taken at their planned figure, the
same one the rule and the budget count. A node that does not answer a round counts at its
previous round's draw, else at its cap with every GPU flat out, and the round names it.

NVML telemetry is supporting evidence only: a utility settles on its revenue meter.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecohash.grid.nodes import READ, Answer, NodeLink, ReadBack, ask_all

SAMPLE_INTERVAL_S = 2.0
DEFAULT_SETTLE_S = 60.0


@dataclass(frozen=True)
class NodeFacts:
    """What the evidence needs to know of a GPU node from the plan and the event."""

    container: str
    gpus: int
    host_w: int
    cap_w: int  # the cap in force, which bounds the draw of a node that is not read


@dataclass
class Round:
    """One sample of every node at about the same time."""

    started: float  # when the round was asked for (epoch s)
    time: float  # when its last answer came
    phase: str
    it_draw_w: float
    container_draw_w: dict[str, float]
    estimated: list[str]  # nodes that did not answer; counted at an earlier draw or their cap
    nodes: dict[str, dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {"t": round(self.time, 3), "started": round(self.started, 3), "phase": self.phase,
                "it_draw_w": round(self.it_draw_w, 1),
                "container_draw_w": {name: round(w, 1) for name, w in self.container_draw_w.items()},
                "estimated": self.estimated, "nodes": self.nodes}


@dataclass
class Evidence:
    """Samples an event's nodes and keeps what it saw; thread-safe where it needs to be."""

    link: NodeLink
    samples_file: Path
    nodes: dict[str, NodeFacts]
    other_host_w: int  # host_w of the site's nodes without GPUs: counted, never read
    phase: str = "curtail"
    last_draw_w: dict[str, float] = field(default_factory=dict)
    rounds: list[Round] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def set_cap(self, caps_w: Mapping[str, int]) -> None:
        with self._lock:
            for name, cap in caps_w.items():
                facts = self.nodes[name]
                self.nodes[name] = NodeFacts(facts.container, facts.gpus, facts.host_w, cap)

    def sample(self) -> Round:
        """Read every node once, in parallel, and record the round."""
        started = time.time()
        answers = ask_all(self.link, dict.fromkeys(self.nodes, READ))
        return self.record(answers, started=started)

    def record(self, answers: Mapping[str, Answer], phase: str | None = None,
               started: float | None = None) -> Round:
        """Record a round from answers already had (a curtail's read-backs are samples too)."""
        with self._lock:
            nodes: dict[str, dict[str, Any]] = {}
            for name, answer in answers.items():
                read_back = answer.read_back
                if read_back is not None and read_back.draw_w is not None:
                    self.last_draw_w[name] = read_back.draw_w
                nodes[name] = _node_entry(answer)
            read_at = [answer.read_back.read_at for answer in answers.values() if answer.read_back]
            finished = max(read_at, default=time.time())
            it_draw, per_container, estimated = self._draw({n: a.read_back for n, a in answers.items()})
            asked = started if started is not None else min(read_at, default=finished)
            taken = Round(asked, finished, phase or self.phase, it_draw, per_container, estimated, nodes)
            self.rounds.append(taken)
            append_line(self.samples_file, json.dumps(taken.as_dict(), separators=(",", ":")))
        return taken

    def _draw(self, read_backs: Mapping[str, ReadBack | None]) -> tuple[float, dict[str, float], list[str]]:
        per_container: dict[str, float] = {}
        estimated = []
        for name, facts in self.nodes.items():
            read_back = read_backs.get(name)
            measured = read_back.draw_w if read_back is not None else None
            if measured is None:
                estimated.append(name)
                measured = self.last_draw_w.get(name, facts.gpus * facts.cap_w)
            per_container[facts.container] = per_container.get(facts.container, 0.0) + facts.host_w + measured
        return self.other_host_w + sum(per_container.values()), per_container, sorted(estimated)


def _node_entry(answer: Answer) -> dict[str, Any]:
    read_back = answer.read_back
    entry: dict[str, Any] = {}
    if read_back is not None:
        override = read_back.override
        entry = {"node_time": round(read_back.node_time, 3),
                 "event": override.get("event") if override else None,
                 "gpus": [gpu.as_dict() for gpu in read_back.gpus]}
    if answer.problem:
        entry["error"] = answer.problem
    return entry


class Sampler:
    """Samples in a thread every interval until stopped, or until `settled` says so.

    wake() takes the next round at once (the caps were just verified: the draw is worth
    reading now, not at the end of the interval).
    """

    def __init__(self, evidence: Evidence, interval_s: float = SAMPLE_INTERVAL_S):
        self.evidence = evidence
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="curtail-sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.evidence.sample()
            self._wake.wait(self.interval_s)
            self._wake.clear()


def append_line(path: Path, line: str) -> None:
    """Append one line to a 0600 file (created so, never readable by others even for a moment)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(descriptor, "a", encoding="utf-8") as file:
        file.write(line + "\n")


def read_samples(path: Path) -> list[dict[str, Any]]:
    """The rounds of an event's samples.jsonl; a torn last line (a killed command) is skipped."""
    rounds = []
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return []
    for line in lines:
        try:
            rounds.append(json.loads(line))
        except ValueError:
            continue
    return rounds
