"""`ecohash bootstrap`: make a site's bare nodes standard GPU inference nodes."""

from __future__ import annotations

import sys

import click

from ecohash.commands.options import CONTEXT_SETTINGS, batch_option_value, console, load, site_argument
from ecohash.errors import EcohashError


@click.command(context_settings=CONTEXT_SETTINGS)
@site_argument
@click.option("--limit", "-l", metavar="PATTERN",
              help="Only these nodes or groups (Ansible pattern, e.g. container_c01 or c01-r01-n0*).")
@click.option("--check", is_flag=True, help="Report what would change; change nothing.")
@click.option("--serial", metavar="N|N%", callback=batch_option_value,
              help="Nodes per batch; default: the site's provisioning.rollout.serial.")
@click.option("--max-fail-percentage", type=click.IntRange(0, 100), metavar="PCT",
              help="Stop when more of a batch fails; default: the site's rollout setting.")
def bootstrap(site: str, limit: str | None, check: bool, serial: int | str | None,
              max_fail_percentage: int | None) -> None:
    """Run playbooks/bootstrap.yml on SITE's nodes, in batches, through ansible-runner.

    Nodes that do not answer are set aside and reported; the rest converge in
    the site's batches. Each run's events and summary are kept under the state
    directory (runs/SITE/...). Exits 1 if any node failed or was unreachable.

    Example:

        ecohash bootstrap tx-odessa --limit container_c02

        ecohash bootstrap lab --check
    """
    from ecohash.ansible.inventory import inventory_for
    from ecohash.ansible.progress import ProgressView
    from ecohash.ansible.runner import PlaybookRun, run_playbook

    loaded = load(site)
    # Everything the inventory plugin will do, done first: a bad site or standard is
    # reported here, once, as FILE:LINE, before Ansible starts.
    inventory_for(loaded)
    request = PlaybookRun(
        site_name=loaded.name,
        site_file=loaded.file,
        playbook="bootstrap.yml",
        limit=limit,
        check=check,
        serial=serial,
        max_fail_percentage=max_fail_percentage,
    )
    from ecohash.locks import site_lock

    out = console()
    # One change to a site's nodes at a time: a bootstrap beside a provision would
    # race it on the same hosts.
    with site_lock(loaded.name, "bootstrap"), ProgressView(out, live=sys.stdout.isatty()) as view:
        result = run_playbook(request, view.update)
    view.print_summary(result)
    out.print(f"run artifacts: {result.directory}")
    if result.rc != 0:
        failed = result.failed_hosts
        raise EcohashError(
            f"{len(failed)} node(s) did not converge: {', '.join(failed)}" if failed
            else f"ansible-playbook failed (exit {result.rc}); see {result.directory}/artifacts"
        )
