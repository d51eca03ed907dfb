"""`ecohash bootstrap`: make a site's bare nodes standard GPU inference nodes."""

from __future__ import annotations

import sys

import click

from ecohash.commands.options import (
    CONTEXT_SETTINGS,
    batch_option_value,
    console,
    load,
    renamed_option,
    site_argument,
)
from ecohash.errors import EcohashError


@click.command(context_settings=CONTEXT_SETTINGS)
@site_argument
@click.option("--limit", "-l", metavar="PATTERN",
              help="Only these nodes or groups (Ansible pattern, e.g. container_c01 or c01-r01-n0*).")
@renamed_option("--dry-run", "--check", dest="dry_run", is_flag=True,
                help="Report what would change (Ansible's check mode); change nothing and record nothing.")
@renamed_option("--wave-size", "--serial", dest="wave_size", metavar="N|N%", callback=batch_option_value,
                help="Nodes per batch; default: the site's provisioning.rollout.serial.")
@renamed_option("--max-fail-pct", "--max-fail-percentage", dest="max_fail_pct", type=click.IntRange(0, 100),
                metavar="PCT", help="Stop when more of a batch fails; default: the site's rollout setting.")
def bootstrap(site: str, limit: str | None, dry_run: bool, wave_size: int | str | None,
              max_fail_pct: int | None) -> None:
    """Run playbooks/bootstrap.yml on SITE's nodes, in batches, through ansible-runner.

    Nodes that do not answer are set aside and reported; the rest converge in
    the site's batches. Each run's events and summary are kept under the state
    directory (runs/SITE/...). A node that ran the whole node play is recorded in
    the site's rollout state at its fingerprint, as provision records it, so
    `ecohash status`, `plan` and `fleet` count it current and provision skips it.
    Exits 1 if any node failed or was unreachable, 130 when interrupted. The
    options are named as provision's (--serial, --max-fail-percentage and
    --check still work).

    Example:

        ecohash bootstrap tx-odessa --limit container_c02

        ecohash bootstrap lab --dry-run
    """
    from ecohash.ansible.inventory import inventory_for
    from ecohash.ansible.patterns import select_hosts
    from ecohash.ansible.progress import ProgressView
    from ecohash.ansible.runner import PlaybookRun, run_playbook
    from ecohash.rollout.bootstrapped import ConvergedRecorder

    loaded = load(site)
    # Everything the inventory plugin will do, done first: a bad site or standard is
    # reported here, once, as FILE:LINE, before Ansible starts.
    inventory = inventory_for(loaded)
    # A mistyped --limit term is refused here, as provision refuses it, rather than
    # ignored by Ansible with a warning and a run that does nothing.
    scope = select_hosts(inventory, limit)
    # Fingerprinted before the run, of what it is given; nothing to record from a dry run.
    recorder = None if dry_run else ConvergedRecorder(loaded.name, inventory, scope)
    request = PlaybookRun(
        site_name=loaded.name,
        site_file=loaded.file,
        playbook="bootstrap.yml",
        limit=limit,
        check=dry_run,
        serial=wave_size,
        max_fail_percentage=max_fail_pct,
    )
    from ecohash.locks import site_lock

    out = console()
    # One change to a site's nodes at a time: a bootstrap beside a provision would
    # race it on the same hosts.
    with site_lock(loaded.name, "bootstrap"), ProgressView(out, live=sys.stdout.isatty()) as view:
        result = run_playbook(request, view.update)
        recorded = recorder.record(result) if recorder else []
    view.print_summary(result)
    if recorded:
        out.print(f"recorded as standard in the rollout state: {len(recorded)} node(s)")
    out.print(f"run artifacts: {result.directory}")
    if result.rc != 0:
        failed = result.failed_hosts
        raise EcohashError(
            f"{len(failed)} node(s) did not converge: {', '.join(failed)}" if failed
            else f"ansible-playbook failed (exit {result.rc}); see {result.directory}/artifacts"
        )
