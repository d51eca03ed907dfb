"""Running commands and tracking the long-lived processes ecohash starts.

Every command failure becomes an EcohashError carrying the command and the tail of its
stderr, so a user sees why it failed without a traceback. Processes left running (the
lab's hosts, a site's registry) are identified by PID *and* start time, so a recycled PID
is never signalled. Production code and the lab both run commands through here, which is
why it sits below both: production code never imports the lab.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ecohash.errors import EcohashError

STDERR_TAIL_LINES = 15


def run(
    command: Sequence[str | os.PathLike[str]],
    *,
    input_text: str | None = None,
    timeout_s: float | None = 600,
    env: dict[str, str] | None = None,
) -> str:
    """Run a command to completion and return its stdout; raise EcohashError if it fails."""
    argv = [str(part) for part in command]
    try:
        result = subprocess.run(
            argv,
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=env,
            check=False,
        )
    except FileNotFoundError as error:
        raise EcohashError(f"command not found: {argv[0]} (in: {shlex.join(argv)})") from error
    except subprocess.TimeoutExpired as error:
        raise EcohashError(f"command timed out after {timeout_s} s: {shlex.join(argv)}") from error
    if result.returncode != 0:
        raise EcohashError(
            describe_failure(argv, result.returncode, result.stderr or result.stdout)
        )
    return result.stdout


def describe_failure(argv: Sequence[str], returncode: int, output: str) -> str:
    """A one-paragraph message naming the command, its exit status and its last output."""
    tail = "\n".join(output.strip().splitlines()[-STDERR_TAIL_LINES:])
    message = f"command failed (exit {returncode}): {shlex.join(argv)}"
    return f"{message}\n{tail}" if tail else message


@dataclass(frozen=True)
class TrackedProcess:
    """A process ecohash started and must stop: its PID and the kernel's start time for it."""

    pid: int
    start_ticks: int

    @classmethod
    def of(cls, pid: int) -> TrackedProcess:
        ticks = start_ticks_of(pid)
        if ticks is None:
            raise EcohashError(f"process {pid} exited right after it was started")
        return cls(pid=pid, start_ticks=ticks)

    @classmethod
    def find(cls, pid: int) -> TrackedProcess | None:
        """The process now running as `pid`, or None if there is none."""
        ticks = start_ticks_of(pid)
        return None if ticks is None else cls(pid=pid, start_ticks=ticks)

    def is_alive(self) -> bool:
        """True while the same process (not a later one reusing its PID) runs and is no zombie."""
        return start_ticks_of(self.pid) == self.start_ticks and not _is_zombie(self.pid)

    def signal(self, signum: int) -> None:
        if self.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)


def start_ticks_of(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks since boot), or None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[19])


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def start_daemon(argv: Sequence[str | os.PathLike[str]], log_file: Path) -> TrackedProcess:
    """Start a process that outlives this one (own session, stdin closed, output to a log)."""
    command = [str(part) for part in argv]
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        try:
            child = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        except FileNotFoundError as error:
            raise EcohashError(f"command not found: {command[0]}") from error
    # Reaped by whoever calls wait(); we keep the Popen out of state, so detach it.
    _children.append(child)
    return TrackedProcess.of(child.pid)


# Popen objects for daemons started by this process: kept so Python does not warn about
# them, and polled so those that exit do not linger as zombies while this process runs.
_children: list[subprocess.Popen[bytes]] = []


def reap_children() -> None:
    for child in list(_children):
        if child.poll() is not None:
            _children.remove(child)


def stop_all(processes: Sequence[TrackedProcess], grace_s: float = 15.0) -> None:
    """Send SIGTERM to every process at once, then wait; SIGKILL whatever outlives the grace.

    Signalling all first matters: each host takes a second or two to shut down, and the
    hosts do it in parallel instead of one after another. SIGTERM is repeated every second
    because a host still booting can miss it: nspawn forwards it to systemd as SIGRTMIN+3,
    which PID 1 ignores until its own handlers are installed.
    """
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        for process in processes:
            process.signal(signal.SIGTERM)
        if _wait_gone(processes, min(1.0, max(0.0, deadline - time.monotonic()))):
            return
    for process in processes:
        process.signal(signal.SIGKILL)
    if not _wait_gone(processes, 10.0):
        alive = [str(p.pid) for p in processes if p.is_alive()]
        raise EcohashError(f"processes did not exit after SIGKILL: {', '.join(alive)}")


def kill_all(processes: Sequence[TrackedProcess]) -> None:
    """SIGKILL at once: for processes that have no orderly shutdown left to wait for."""
    stop_all(processes, grace_s=0)


def _wait_gone(processes: Sequence[TrackedProcess], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        reap_children()
        if not any(p.is_alive() for p in processes):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def processes_rooted_under(directory: Path) -> list[TrackedProcess]:
    """Processes whose root directory, or command line, lies under `directory`.

    This finds a host's processes (their root is the host's overlay) and the lab's own
    daemons (their command lines name the lab's run directory) even when the lab's
    state file was lost half way through `up`.
    """
    prefix = str(directory.resolve()).rstrip("/") + "/"
    found: list[TrackedProcess] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        try:
            root = os.readlink(entry / "root")
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if (root + "/").startswith(prefix) or prefix in cmdline:
            ticks = start_ticks_of(pid)
            if ticks is not None and not _is_zombie(pid):
                found.append(TrackedProcess(pid=pid, start_ticks=ticks))
    return found
