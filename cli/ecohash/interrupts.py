"""Ctrl-C and SIGTERM as a request to stop at the next safe point, for long-running commands."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# The exit status of a command stopped by Ctrl-C or SIGTERM: what a shell reports for
# SIGINT (128 + 2), so a script can tell an interrupt from a failure.
INTERRUPTED_EXIT = 130


@contextmanager
def interrupt_requests() -> Iterator[threading.Event]:
    """Ctrl-C and SIGTERM set an event instead of raising wherever the code happens to be.

    The rollout checks the event between steps and ansible-runner between reads of
    Ansible's output (it then stops ansible-playbook), so an interrupt always ends with
    the state saved and the report written, never with half a record.
    """
    requested = threading.Event()
    previous = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}

    def handle(_number: int, _frame: object) -> None:
        requested.set()

    for number in previous:
        signal.signal(number, handle)
    try:
        yield requested
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
