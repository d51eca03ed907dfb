"""The preflight of a rollout: can Ansible provision each node at all?

Before any wave, every node is logged into over SSH the way Ansible will reach it
(ecohash.ssh.client: the site's ssh_config, its keys, host keys checked against known_hosts).
Then it checks what every play needs: root, or `sudo` without a password (plays run with
become and nobody types one), and a Python that ansible-core supports. A node that fails
gets a one-line reason and is left out of the rollout, instead of failing in the middle of
a wave.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

from ecohash.one_line import first_line, one_line
from ecohash.ssh.client import Session, connected
from ecohash.ssh.config import NodeNotReady, Target

# The oldest target Python that ansible-core 2.19 supports on managed nodes.
MIN_PYTHON = (3, 8)

ROOT_CHECK_COMMAND = "id -u"
SUDO_CHECK_COMMAND = "sudo -n true"
PYTHON_VERSION_COMMAND = "python3 -c 'import sys; print(\"%d.%d.%d\" % sys.version_info[:3])'"


@dataclass(frozen=True)
class ProbeResult:
    """What the probe of one node found; `reason` is one line when it is not ok."""

    name: str
    ok: bool
    reason: str | None
    python: str | None
    elapsed_s: float


def probe(target: Target, timeout_s: float = 10.0) -> ProbeResult:
    """Probe one node; a problem of the node becomes a not-ok result, never an exception.

    `timeout_s` bounds each step on its own: the TCP connection, the SSH banner, the key
    exchange, authentication and every remote command.
    """
    started = time.monotonic()
    try:
        python = _check_node(target, timeout_s)
    except NodeNotReady as problem:
        # One line whatever a reason quotes: a user name, a command's output.
        reason = one_line(str(problem))
        return ProbeResult(target.name, False, reason, problem.python, time.monotonic() - started)
    except Exception as error:
        # A node that breaks the SSH library in a way not foreseen here must not stop the
        # preflight of the site's other nodes; its result says what happened.
        reason = f"preflight failed unexpectedly: {type(error).__name__}: {one_line(str(error))}"
        return ProbeResult(target.name, False, reason, None, time.monotonic() - started)
    return ProbeResult(target.name, True, None, python, time.monotonic() - started)


def probe_all(
    targets: Sequence[Target],
    timeout_s: float = 10.0,
    workers: int = 64,
    on_result: Callable[[ProbeResult], None] | None = None,
) -> dict[str, ProbeResult]:
    """Probe nodes in parallel, at most `workers` at once; results keyed by name, in `targets` order.

    `on_result` is called from the calling thread, once per node as its probe finishes, so
    a progress display needs no locking.
    """
    names = [target.name for target in targets]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"targets must have distinct names; repeated: {', '.join(duplicates)}")
    if not targets:
        return {}
    finished: dict[str, ProbeResult] = {}
    pool = ThreadPoolExecutor(max_workers=min(workers, len(targets)), thread_name_prefix="preflight")
    try:
        futures = [pool.submit(probe, target, timeout_s) for target in targets]
        for future in as_completed(futures):
            result = future.result()
            finished[result.name] = result
            if on_result is not None:
                on_result(result)
    finally:
        # Interrupted (Ctrl-C, a failing on_result): probes not started yet never start.
        pool.shutdown(wait=True, cancel_futures=True)
    return {name: finished[name] for name in names}


def _check_node(target: Target, timeout_s: float) -> str:
    with connected(target, timeout_s) as session:
        _check_privilege(session, timeout_s)
        return _check_python(session, timeout_s)


def _check_privilege(session: Session, timeout_s: float) -> None:
    if session.user == "root":
        result = session.run(ROOT_CHECK_COMMAND, timeout_s)
        if result.exit_status != 0 or result.stdout.strip() != "0":
            printed = first_line(result.stdout) or first_line(result.stderr) or "nothing"
            raise NodeNotReady(
                f"no privilege escalation: logged in as root, but `{ROOT_CHECK_COMMAND}` gave {printed!r}"
            )
        return
    # Plays run with become and no password prompt, so sudo must work non-interactively.
    result = session.run(SUDO_CHECK_COMMAND, timeout_s)
    if result.exit_status != 0:
        message = first_line(result.stderr) or f"exit status {result.exit_status}"
        raise NodeNotReady(
            f"no privilege escalation: `{SUDO_CHECK_COMMAND}` failed as {session.user}: {message}"
        )


def _check_python(session: Session, timeout_s: float) -> str:
    needed = ".".join(str(part) for part in MIN_PYTHON)
    result = session.run(PYTHON_VERSION_COMMAND, timeout_s)
    if result.exit_status == 127:  # the shell's "command not found"
        raise NodeNotReady(f"no python3 on the node (Ansible needs Python >= {needed})")
    if result.exit_status != 0:
        message = first_line(result.stderr) or "no message"
        raise NodeNotReady(f"python3 failed with exit status {result.exit_status}: {message}")
    version = result.stdout.strip()
    match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", version)
    if match is None:
        raise NodeNotReady(f"python3 printed {first_line(version)!r} instead of its version")
    if (int(match[1]), int(match[2])) < MIN_PYTHON:
        raise NodeNotReady(f"python3 {version} is too old; Ansible needs >= {needed}", python=version)
    return version
