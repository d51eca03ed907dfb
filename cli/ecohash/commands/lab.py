"""`ecohash lab`: a whole site of real Debian hosts on this machine, for roles and rollouts."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click

from ecohash.commands.options import CONTEXT_SETTINGS, json_option, print_json

if TYPE_CHECKING:
    from ecohash import lab as lab_library

# The lab library is imported by the lab commands that use it, not here: it would add
# some 50 ms (a sixth) to the start-up of every other command (plan, render).


def _progress(message: str) -> None:
    click.echo(f"lab: {message}", err=True)


@click.group(context_settings=CONTEXT_SETTINGS)
def lab() -> None:
    """Run the lab: Debian 12 hosts with systemd and sshd in network namespaces (root, Linux).

    Example:

        sudo ecohash lab up --nodes 4

        sudo ecohash lab ssh c01-r01-n01 -- systemctl is-system-running

        sudo ecohash lab down
    """


@lab.command(context_settings=CONTEXT_SETTINGS)
@click.option(
    "--nodes", default=4, show_default=True, type=click.IntRange(1), help="Hosts to start."
)
@click.option(
    "--containers",
    default=2,
    show_default=True,
    type=click.IntRange(1),
    help="Containers to spread the hosts over (one rack each).",
)
@click.option(
    "--offline",
    is_flag=True,
    help="Give the hosts no apt proxy: every package, binary and image comes from the "
    "lab's bundle, which then carries the roles' packages with their dependencies.",
)
@click.option(
    "--executor",
    is_flag=True,
    help="Add one more host, no node of the site, that the lab's site file names as its "
    "executor (spec.provisioning.executor), with ansible-core and ansible-runner installed "
    "from the site mirror's wheels: provision and drift run their waves there.",
)
def up(nodes: int, containers: int, offline: bool, executor: bool) -> None:
    """Start the lab's hosts, replacing any running lab; write the `lab` site inventory.

    The Debian base is built with debootstrap once (about a minute) and reused after that.
    The lab's SIMULATED packages, k3s and inference image are built into a signed bundle,
    verified, and loaded into the lab's site mirror and site registry on the bridge.

    Example:

        sudo ecohash lab up --nodes 4 --containers 2

        sudo ecohash lab up --offline

        sudo ecohash lab up --executor

        ecohash plan lab
    """
    from ecohash import lab as lab_library

    result = lab_library.up(
        nodes=nodes, containers=containers, progress=_progress, offline=offline, executor=executor
    )
    _print_status(result)


@lab.command(context_settings=CONTEXT_SETTINGS)
def down() -> None:
    """Stop every lab host and remove all the lab made: processes, mounts, namespaces, links.

    The cached base and the apt proxy's cache stay for the next `ecohash lab up`.

    Example:

        sudo ecohash lab down
    """
    from ecohash import lab as lab_library

    lab_library.down(progress=_progress)


@lab.command(context_settings=CONTEXT_SETTINGS)
@json_option
def status(as_json: bool) -> None:
    """Show the lab's hosts, their addresses, and whether each is up.

    Example:

        sudo ecohash lab status

        sudo ecohash lab status --json
    """
    from ecohash import lab as lab_library

    result = lab_library.status()
    if as_json:
        print_json("lab-status", result.as_dict())
    else:
        _print_status(result)


@lab.command(context_settings={**CONTEXT_SETTINGS, "ignore_unknown_options": True})
@click.argument("node")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def ssh(node: str, command: tuple[str, ...]) -> None:
    """Open SSH to a lab host (lab key, strict host-key checking), or run COMMAND there.

    Example:

        sudo ecohash lab ssh c01-r01-n01

        sudo ecohash lab ssh c01-r01-n01 -- nvidia-smi -L
    """
    from ecohash import lab as lab_library

    argv = lab_library.ssh_command(node, list(command))
    os.execvp(argv[0], argv)


def _print_status(result: lab_library.LabStatus) -> None:
    if not result.hosts:
        click.echo("no lab is running; start one with `ecohash lab up`")
        return
    machines = [*result.hosts, *([result.executor] if result.executor else [])]
    width = max(len(h.name) for h in machines)
    for host in machines:
        role = "  (the site's executor)" if host is result.executor else ""
        click.echo(f"{host.name:<{width}}  {host.address:<12}  {host.state:<4}  {host.detail}{role}")
    click.echo(f"apt proxy:   {result.proxy}")
    click.echo(f"site mirror: {result.mirror}")
    click.echo(f"registry:    {result.registry}")
    if result.bundle:
        from ecohash.lab.mirror import BundleFigures

        click.echo(f"lab {BundleFigures(**result.bundle).summary()}")
    if result.inventory:
        click.echo(f"inventory:   {result.inventory}")
    if result.ssh_config:
        click.echo(f"ssh config:  {result.ssh_config}")
