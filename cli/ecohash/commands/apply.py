"""`ecohash apply`: bring a site's Kubernetes resources in line with its inventory, through Pulumi."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import click

from ecohash.commands.options import CONTEXT_SETTINGS, load, site_argument
from ecohash.errors import InvalidInputError

if TYPE_CHECKING:
    from ecohash.stack.automation import ApplyResult

# Pulumi's operations in the order a reader wants them; any others follow alphabetically.
_OPERATION_ORDER = ("create", "update", "replace", "delete", "same")


@click.command(context_settings=CONTEXT_SETTINGS)
@site_argument
@click.option("--preview", is_flag=True, help="Show what would change; change nothing.")
@click.option("--backend", metavar="URL",
              help="Pulumi state backend (file://, s3://, https://api.pulumi.com, ...); default:"
                   " $ECOHASH_PULUMI_BACKEND, else a file backend under the state directory.")
@click.option("--refresh/--no-refresh", default=True, show_default=True,
              help="Read the cluster's live state before computing changes.")
@click.option("--yes", "-y", is_flag=True, help="Apply without asking; required off a terminal.")
def apply(site: str, preview: bool, backend: str | None, refresh: bool, yes: bool) -> None:
    """Apply SITE's stack (stacks/, one Pulumi stack per site) with the Pulumi Automation API.

    On a terminal, shows the changes and asks before applying them; elsewhere
    (CI, pipes) it applies only with --yes. Holds the site's lock, as provision
    does, and records what it applied in the site's rollout state, so plan and
    drift compare with it. Needs the pulumi CLI; the secrets
    passphrase is generated once per site under the state directory
    (secrets/SITE/pulumi-passphrase) unless PULUMI_CONFIG_PASSPHRASE or
    PULUMI_CONFIG_PASSPHRASE_FILE is set.

    Example:

        ecohash apply tx-odessa --preview

        ecohash apply tx-odessa --yes --backend s3://ecohash-state/sites
    """
    from ecohash.locks import site_lock
    from ecohash.rollout.apply import apply_and_record
    from ecohash.stack.automation import apply_site, require_pulumi_cli

    loaded = load(site)
    require_pulumi_cli()  # what is missing comes first, before any question about confirming
    if not (preview or yes or _can_ask()):
        raise InvalidInputError(
            f"refusing to apply {loaded.name} without confirmation: stdin is not a terminal;"
            " pass --yes to apply, or --preview to only show the changes"
        )
    # Held from the preview to the update: what was previewed and confirmed is what is
    # applied, with no provision or other apply of the site in between.
    with site_lock(loaded.name, "apply"):
        if preview or not yes:
            _print_result(apply_site(loaded, preview=True, backend_url=backend, refresh=refresh,
                                     on_output=click.echo))
            if preview:
                return
            click.confirm(f"Apply these changes to {loaded.name}?", abort=True)
        _print_result(apply_and_record(loaded, backend_url=backend, refresh=refresh, on_output=click.echo))


def _can_ask() -> bool:
    return sys.stdin.isatty()


def _print_result(result: ApplyResult) -> None:
    known = [op for op in _OPERATION_ORDER if op in result.changes]
    others = sorted(set(result.changes) - set(known))
    changes = ", ".join(f"{op} {result.changes[op]}" for op in known + others) or "no changes"
    verb = "preview" if result.operation == "preview" else "applied"
    click.echo(f"{result.site}: {verb}: {changes} (state: {result.backend_url})")
    for name, value in result.outputs.items():
        click.echo(f"  {name}: {json.dumps(value)}")
