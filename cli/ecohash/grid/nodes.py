"""Talking to the site's GPU nodes for a curtailment: `ecohash-gpu-power` over SSH, in parallel.

Every node is reached as Ansible and the preflight reach it (ecohash.ssh.client: the site's
ssh_config, its keys, host keys always checked against known_hosts), and runs the node's
one script that applies caps, /usr/local/sbin/ecohash-gpu-power, through `sudo -n` when
the site logs in as another user than root. The script prints a read-back, one JSON line:
each GPU's limit, enforced limit, draw and energy counter, and the override in force.

A command keeps one connection per node for its whole life (the caps, their read-back,
the samples that follow): a login costs a key exchange, a command on an open connection a
round trip. A node whose connection breaks is reconnected once per command it runs.
"""

from __future__ import annotations

import json
import shlex
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from ecohash.one_line import first_line, one_line
from ecohash.ssh import client
from ecohash.ssh.config import NodeNotReady, Target

SCRIPT = "/usr/local/sbin/ecohash-gpu-power"
# Connections opened at once: logins are CPU-bound on the controller (key exchange), the
# commands that follow are round trips; more threads than this only queue on the CPUs.
WORKERS = 64
TIMEOUT_S = 10.0
READ = ("read",)

T = TypeVar("T")


class NodeUnreachable(Exception):
    """The node could not be reached, logged into, or did not answer in time; one line."""


class NodeCommandFailed(Exception):
    """The node answered, but its script failed or printed no read-back; one line."""

    def __init__(self, reason: str, read_back: ReadBack | None = None):
        super().__init__(reason)
        self.read_back = read_back


@dataclass(frozen=True)
class GpuReading:
    index: int
    limit_w: float | None
    enforced_w: float | None
    draw_w: float | None
    energy_mj: int | None

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "limit_w": self.limit_w, "enforced_w": self.enforced_w,
                "draw_w": self.draw_w, "energy_mj": self.energy_mj}


@dataclass(frozen=True)
class ReadBack:
    """What a node's script said about its GPUs, and when (controller time, epoch s)."""

    node: str
    read_at: float
    node_time: float
    planned_cap_w: int
    override: Mapping[str, Any] | None
    gpus: tuple[GpuReading, ...]

    @property
    def draw_w(self) -> float | None:
        draws = [gpu.draw_w for gpu in self.gpus]
        return None if not draws or None in draws else sum(d for d in draws if d is not None)

    @property
    def enforced_w(self) -> list[float]:
        return [gpu.enforced_w for gpu in self.gpus if gpu.enforced_w is not None]

    def not_enforcing(self, cap_w: int) -> list[str]:
        """Each GPU whose enforced limit is not cap_w, as 'GPU i enforces X W'."""
        wrong = [gpu for gpu in self.gpus if gpu.enforced_w is None or round(gpu.enforced_w) != cap_w]
        return [f"GPU {gpu.index} enforces " + _limit(gpu.enforced_w) for gpu in wrong]


def _limit(watts: float | None) -> str:
    return "no limit" if watts is None else f"{watts:g} W"


def parse_read_back(node: str, text: str, read_at: float) -> ReadBack:
    """The script's last output line as a ReadBack; NodeCommandFailed naming what is wrong."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise NodeCommandFailed("printed no read-back")
    try:
        raw = json.loads(lines[-1])
        gpus = tuple(
            GpuReading(int(gpu["index"]), _watts(gpu.get("limit_w")), _watts(gpu.get("enforced_w")),
                       _watts(gpu.get("draw_w")),
                       None if gpu.get("energy_mj") is None else int(gpu["energy_mj"]))
            for gpu in raw["gpus"]
        )
        override = raw.get("override")
        if override is not None and not isinstance(override, dict):
            raise TypeError("override")
        return ReadBack(node, read_at, float(raw["node_time"]), int(raw["planned_cap_w"]), override, gpus)
    except (ValueError, KeyError, TypeError) as error:
        raise NodeCommandFailed(f"printed a read-back ecohash cannot read ({type(error).__name__}: "
                                f"{one_line(str(error))[:80]})") from None


def _watts(value: Any) -> float | None:
    return None if value is None else float(value)


class NodeLink(Protocol):
    """Runs ecohash-gpu-power on a node; the SSH link, or a simulation in tests."""

    def run(self, node: str, arguments: Sequence[str]) -> ReadBack: ...

    def close(self) -> None: ...


def power_command(arguments: Sequence[str], user: str) -> str:
    """The remote command line: every value is an int or an id ecohash made, quoted all the same."""
    words = [SCRIPT, *arguments]
    return shlex.join(words if user == "root" else ["sudo", "-n", *words])


class SshLink:
    """One SSH connection per node, opened on first use and kept for the command's life.

    Commands to one node may run at once (the sampler's reads beside the caps), each on its
    own channel; the node's script serialises what changes caps. A node that could not be
    connected to is remembered for the command: its next read fails at once instead of
    waiting out the timeout again, and a command that waited while it failed fails with it;
    caps and releases are always tried anew.
    """

    def __init__(self, targets: Mapping[str, Target], timeout_s: float = TIMEOUT_S):
        self.targets = dict(targets)
        self.timeout_s = timeout_s
        self._sessions: dict[str, tuple[client.Session, ExitStack]] = {}
        self._down: dict[str, tuple[float, str]] = {}  # node -> (when, why) its last login failed
        self._locks = {name: threading.Lock() for name in self.targets}
        self._closed = False

    def run(self, node: str, arguments: Sequence[str]) -> ReadBack:
        asked = time.monotonic()
        retry_down = tuple(arguments) != READ
        session, reused = self._session(node, asked, retry_down)
        command = power_command(arguments, session.user)
        try:
            result = session.run(command, self.timeout_s)
        except NodeNotReady as problem:
            self._drop(node, session)
            if not reused:
                raise NodeUnreachable(one_line(str(problem))) from None
            # A connection kept from an earlier command may have gone stale: one new login.
            session, _ = self._session(node, time.monotonic(), retry_down)
            try:
                result = session.run(command, self.timeout_s)
            except NodeNotReady as again:
                self._drop(node, session)
                raise NodeUnreachable(one_line(str(again))) from None
        read_at = time.time()
        if result.exit_status != 0:
            message = first_line(result.stderr) or first_line(result.stdout) or "no message"
            if result.exit_status == 127:
                message = f"{SCRIPT} is not installed (provision the node first): {message}"
            raise NodeCommandFailed(f"exit status {result.exit_status}: {message}")
        return parse_read_back(node, result.stdout, read_at)

    def _session(self, node: str, asked: float, retry_down: bool) -> tuple[client.Session, bool]:
        """The node's open session (and True), or a new one (and False)."""
        with self._locks[node]:
            if self._closed:
                raise NodeUnreachable("the command has finished with its connections")
            if node in self._sessions:
                return self._sessions[node][0], True
            down = self._down.get(node)
            if down is not None and (not retry_down or down[0] >= asked):
                raise NodeUnreachable(down[1])
            stack = ExitStack()
            try:
                session = stack.enter_context(client.connected(self.targets[node], self.timeout_s))
            except NodeNotReady as problem:
                stack.close()
                reason = one_line(str(problem))
                self._down[node] = (time.monotonic(), reason)
                raise NodeUnreachable(reason) from None
            self._down.pop(node, None)
            self._sessions[node] = (session, stack)
            return session, False

    def _drop(self, node: str, session: client.Session | None = None) -> None:
        with self._locks[node]:
            entry = self._sessions.get(node)
            if entry is not None and (session is None or entry[0] is session):
                del self._sessions[node]
                entry[1].close()

    def close(self) -> None:
        self._closed = True
        for node in list(self._locks):
            with self._locks[node]:
                entry = self._sessions.pop(node, None)
            if entry is not None:
                entry[1].close()


@dataclass(frozen=True)
class Answer:
    """A node's answer to one command: a read-back, or why there is none."""

    node: str
    read_back: ReadBack | None
    unreachable: str | None = None
    failed: str | None = None

    @property
    def problem(self) -> str | None:
        return self.unreachable or self.failed


def ask(node: str, link: NodeLink, arguments: Sequence[str]) -> Answer:
    """Run the script on one node; every problem of the node becomes an Answer, never a raise."""
    try:
        return Answer(node, link.run(node, arguments))
    except NodeUnreachable as problem:
        reason = str(problem)  # the preflight's own reasons often say "unreachable: ..." already
        if not reason.startswith("unreachable"):
            reason = f"unreachable: {reason}"
        return Answer(node, None, unreachable=reason)
    except NodeCommandFailed as problem:
        return Answer(node, problem.read_back, failed=str(problem))
    except Exception as error:  # noqa: BLE001 - one node's odd failure must not stop the others
        reason = f"failed unexpectedly: {type(error).__name__}: {one_line(str(error))}"
        return Answer(node, None, failed=reason)


def in_parallel(items: Sequence[str], work: Callable[[str], T], workers: int = WORKERS) -> dict[str, T]:
    """work(item) for every item, at most `workers` at once; results keyed by item, in order."""
    if not items:
        return {}
    with ThreadPoolExecutor(max_workers=min(workers, len(items)), thread_name_prefix="curtail") as pool:
        futures = {item: pool.submit(work, item) for item in items}
        return {item: futures[item].result() for item in items}


def ask_all(link: NodeLink, commands: Mapping[str, Sequence[str]],
            workers: int = WORKERS) -> dict[str, Answer]:
    """Each node's command (node -> arguments), all in parallel."""
    return in_parallel(list(commands), lambda node: ask(node, link, commands[node]), workers)
