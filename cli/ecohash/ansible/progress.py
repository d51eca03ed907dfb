"""Live progress of a playbook run, per host: a table on a terminal, lines in a log."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any

from ecohash.ansible.runner import HostProgress, RunResult

# A terminal shows the hosts with something to say; a 500-node site does not fit.
MAX_ROWS = 30


class ProgressView:
    def __init__(self, console: Any, live: bool, title: str = "bootstrap"):
        self.console = console
        self.title = title
        self.hosts: dict[str, HostProgress] = {}
        self._live_enabled = live
        self._live: Any = None
        self._reported: dict[str, str] = {}
        # A sharded run reports from one thread per shard (ecohash.ansible.shards): one
        # update at a time, or a table is drawn from hosts another thread is adding to.
        self._lock = threading.Lock()

    def __enter__(self) -> ProgressView:
        if self._live_enabled:
            from rich.live import Live

            self._live = Live(self._table(), console=self.console, refresh_per_second=4)
            self._live.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._live is not None:
            self._live.__exit__(kind, value, trace)

    def update(self, progress: HostProgress) -> None:
        """Show a host's progress; safe to call from several threads at once."""
        with self._lock:
            self.hosts[progress.name] = progress
            if self._live is not None:
                self._live.update(self._table())
                return
            # Off a terminal, one line when a host fails or becomes unreachable, so CI logs
            # show what went wrong as it happens without a line per task and host.
            state = progress.state
            if state in ("failed", "unreachable") and self._reported.get(progress.name) != state:
                self._reported[progress.name] = state
                self.console.print(f"{progress.name}: {state}: {progress.failure}", markup=False,
                                   highlight=False)

    def _table(self) -> Any:
        from rich.table import Table

        table = Table(title=self.title, expand=False)
        for column in ("node", "state", "ok", "changed", "failed", "task"):
            table.add_column(column)
        ordered = sorted(self.hosts.values(),
                         key=lambda h: (h.state not in ("failed", "unreachable"), h.name))
        for host in ordered[:MAX_ROWS]:
            table.add_row(host.name, host.state, str(host.counts["ok"]), str(host.counts["changed"]),
                          str(host.counts["failed"] + host.counts["unreachable"]), host.task[:60])
        if len(ordered) > MAX_ROWS:
            table.caption = f"... and {len(ordered) - MAX_ROWS} more nodes"
        return table

    def print_summary(self, result: RunResult) -> None:
        from rich.table import Table

        table = Table(title=f"{self.title}: {result.status}")
        for column in ("node", "ok", "changed", "failed", "unreachable", "health", "failure"):
            table.add_column(column)
        stats = result.stats
        for name in sorted(set(result.hosts) | set(stats.get("ok", {}))):
            progress = result.hosts.get(name, HostProgress(name))
            health = progress.health
            verdict = "-" if health is None else ("passed" if health.get("passed") else
                                                 "FAILED " + ",".join(health.get("failed_checks", [])))
            if health is not None and health.get("simulated"):
                verdict += " (SIMULATED)"
            table.add_row(
                name,
                str(stats.get("ok", {}).get(name, 0)),
                str(stats.get("changed", {}).get(name, 0)),
                str(stats.get("failures", {}).get(name, 0)),
                str(stats.get("dark", {}).get(name, 0)),
                verdict,
                progress.failure or "",
            )
        self.console.print(table)
