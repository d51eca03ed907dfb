"""`ecohash provision`: one command from a site inventory to a verified, standard rollout."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from ecohash.commands.options import (
    CONTEXT_SETTINGS,
    all_option,
    batch_option_value,
    console,
    here_option,
    json_option,
    load,
    print_json,
    shards_option,
    site_argument,
)
from ecohash.errors import EcohashError
from ecohash.interrupts import INTERRUPTED_EXIT


class ConsoleDisplay:
    """Progress on the console: a live table per wave on a terminal, lines in a log."""

    def __init__(self, out: Any):
        self.out = out

    def say(self, text: str) -> None:
        # soft_wrap: a long line stays one line in a log, for grep and for tests.
        self.out.print(text, markup=False, highlight=False, soft_wrap=True)

    @contextmanager
    def wave(self, title: str) -> Iterator[Callable[[Any], None]]:
        from ecohash.ansible.progress import ProgressView

        with ProgressView(self.out, live=self.out.is_terminal, title=title) as view:
            yield view.update


@click.command(context_settings=CONTEXT_SETTINGS)
@site_argument
@click.option("--limit", "-l", metavar="PATTERN",
              help="Only these nodes or groups (Ansible pattern, e.g. container_c01 or c01-r01-n0*).")
@click.option("--wave-size", metavar="N|N%", callback=batch_option_value,
              help="Nodes per wave after the canary; default: the site's provisioning.rollout.serial.")
@click.option("--max-fail-pct", type=click.IntRange(0, 100), metavar="PCT",
              help="Stop when more than PCT% of nodes fail; default: the site's rollout setting.")
@click.option("--canary", "canary_per_container", type=click.IntRange(0), default=1, show_default=True,
              metavar="N", help="Nodes per container in the canary wave (0: no canary).")
@shards_option
@click.option("--force", is_flag=True, help="Redo nodes already standard at the same fingerprint.")
@click.option("--dry-run", is_flag=True,
              help="Validate, plan, probe and show the waves; change nothing and record nothing.")
@here_option
@json_option
@all_option
def provision(site: str, limit: str | None, wave_size: int | str | None, max_fail_pct: int | None,
              canary_per_container: int, shards: int | None, force: bool, dry_run: bool,
              here: bool, as_json: bool, show_all: bool) -> None:
    """Provision SITE: preflight, a canary wave, then waves; verify; apply or render the stack.

    Nodes already standard at the same fingerprint (node standard, roles, variables
    including the GPU cap) are skipped, so a re-run resumes what is not done. Nodes
    that fail the SSH preflight are left out and reported. Rollout state is kept per
    site (see `ecohash status`); the report (report.json, report.txt, report.html)
    is written into the run's directory under the state directory. A site that names
    an executor (spec.provisioning.executor) has each wave run there, over SSH. Exits 1 when a
    node failed or the rollout stopped, 130 when interrupted. Large waves run as
    several Ansible jobs at once over slices of their nodes (--shards); the wave
    holding the Kubernetes servers always runs as one.

    Example:

        ecohash provision tx-odessa --dry-run

        ecohash provision tx-odessa --limit container_c02 --wave-size 10%

        ecohash provision tx-odessa --wave-size 400 --shards 8
    """
    from ecohash.interrupts import interrupt_requests
    from ecohash.rollout.provision import ProvisionRequest
    from ecohash.rollout.provision import provision as run_provision
    from ecohash.rollout.report import failed_names, render_text

    loaded = load(site)
    # With --json, stdout carries only the report; progress goes to stderr.
    out = console(stderr=as_json)
    request = ProvisionRequest(site=loaded, limit=limit, wave_size=wave_size, max_fail_pct=max_fail_pct,
                               canary_per_container=canary_per_container, force=force, dry_run=dry_run,
                               here=here, shards=shards)
    with interrupt_requests() as cancel:
        report = run_provision(request, ConsoleDisplay(out), cancel)
    if as_json:
        print_json("provision", report)
    else:
        out.print(render_text(report, show_all), markup=False, highlight=False, soft_wrap=True, end="")
        if report["directory"]:
            out.print(f"report: {report['directory']}/report.html (also report.json, report.txt)",
                      markup=False, highlight=False, soft_wrap=True)
    if report["outcome"] == "interrupted":
        sys.exit(INTERRUPTED_EXIT)
    if report["outcome"] == "stopped" or report["failed"]:
        raise EcohashError(report["message"] or f"{len(report['failed'])} node(s) failed: "
                           + failed_names(report, show_all))
