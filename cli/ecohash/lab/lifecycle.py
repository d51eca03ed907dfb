"""Bringing the whole lab up and down, and reporting on it: the order things are made in.

`up` records each thing in the state file before making it; `down` undoes the record in
reverse (processes, mounts, namespaces, links, files) and then sweeps for anything named
like the lab's that the record missed, so a half-built lab is cleaned too.
"""

from __future__ import annotations

import fcntl
import os
import platform
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ecohash import process
from ecohash.ansible.runner import PlaybookRun, run_playbook
from ecohash.bundle import siteregistry
from ecohash.errors import EcohashError, InvalidInputError
from ecohash.grid.events import event_file
from ecohash.lab import (
    base,
    cgroups,
    hosts,
    inventory,
    mirror,
    mounts,
    network,
    proxy,
    state,
)
from ecohash.lab.layout import (
    BRIDGE_ADDRESS,
    BRIDGE_NAME,
    EXECUTOR_ADDRESS,
    EXECUTOR_NAME,
    EXECUTOR_VETH,
    MAX_NODES,
    REGISTRY_PORT,
    SUBNET,
    LabPaths,
    host_address,
    inventory_file,
    netns_name,
    veth_name,
)
from ecohash.lab.simhardware import SimulatedGpus
from ecohash.lab.state import HostRecord, LabRecord
from ecohash.paths import facts_dir
from ecohash.rollout.state import RolloutState
from ecohash.ssh.host_key_checking import HOST_KEY_CHECKING_ARGS
from ecohash.standard import load_standard

Progress = Callable[[str], None]

# Debian packages providing the commands the lab runs on this machine.
REQUIRED_COMMANDS = {
    "debootstrap": "debootstrap",
    "systemd-nspawn": "systemd-container",
    "apt-cacher-ng": "apt-cacher-ng",
    "dpkg-deb": "dpkg",
    "dpkg-scanpackages": "dpkg-dev",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "ip": "iproute2",
    "unshare": "util-linux",
    "mount": "mount",
    "gpg": "gpg",
    "docker-registry": "docker-registry",
}


@dataclass(frozen=True)
class HostStatus:
    name: str
    address: str
    container: str
    sku: str
    state: str  # "up" or "down"
    detail: str


@dataclass(frozen=True)
class LabStatus:
    hosts: list[HostStatus]
    inventory: str | None
    ssh_config: str | None
    proxy: str
    mirror: str
    registry: str
    bundle: dict[str, Any] | None  # mirror.BundleFigures of the bundle `up` loaded
    executor: HostStatus | None = None  # `lab up --executor`'s host, no node of the site

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def check_can_run() -> None:
    """One-line refusal, before touching anything, when the lab cannot work here."""
    if platform.system() != "Linux":
        raise InvalidInputError(f"the lab needs Linux; this is {platform.system()}")
    if os.geteuid() != 0:
        raise InvalidInputError(
            "the lab needs root (network namespaces, mounts, systemd-nspawn); run it with sudo"
        )


def missing_packages() -> list[str]:
    """Debian packages whose commands the lab needs and this machine lacks."""
    return sorted(
        {pkg for command, pkg in REQUIRED_COMMANDS.items() if shutil.which(command) is None}
    )


def check_tools() -> None:
    missing = missing_packages()
    if missing:
        raise InvalidInputError(
            f"the lab needs these Debian packages: {' '.join(missing)}"
            f" (apt-get install {' '.join(missing)})"
        )


@contextmanager
def _locked(paths: LabPaths) -> Iterator[None]:
    paths.root.mkdir(parents=True, exist_ok=True)
    with open(paths.lock_file, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise EcohashError(f"another `ecohash lab` command holds {paths.lock_file}") from None
        yield


def _ignore(_message: str) -> None:
    return None


def up(
    nodes: int = 4, containers: int = 2, progress: Progress = _ignore, *, offline: bool = False,
    executor: bool = False,
) -> LabStatus:
    """Start a lab of `nodes` hosts in `containers` containers, replacing any running lab.

    offline: the hosts get no apt proxy at all, as a site with no route to Debian; the
    lab's bundle then carries every package the roles install (resolved in the base) and
    the site mirror is the hosts' only apt source.
    executor: one more host, no node of the site, that the lab's site file names as its
    executor (spec.provisioning.executor); the bundle then carries the executor's wheels
    and playbooks/executor.yml installs ansible-core and ansible-runner on it from the mirror.
    """
    check_can_run()
    if not 1 <= containers <= nodes <= MAX_NODES:
        raise InvalidInputError(
            f"need 1 <= containers <= nodes <= {MAX_NODES};"
            f" got nodes={nodes}, containers={containers}"
        )
    check_tools()
    paths = LabPaths.current()
    with _locked(paths):
        leftovers = network.lab_namespaces() or network.lab_links() or cgroups.leftover_groups()
        if paths.run.exists() or leftovers:
            progress("removing the lab that is already here")
            _down(paths)
        started = time.monotonic()
        rootfs = base.ensure_base(paths, progress)
        network.check_subnet_unused()
        try:
            _build(paths, rootfs, nodes, containers, progress, offline=offline, executor=executor)
        except BaseException:
            # A half-built lab is worse than none: remove what was made, keep the first error.
            try:
                _down(paths)
            except EcohashError as cleanup_error:
                progress(f"cleaning up the failed lab also failed: {cleanup_error}")
            raise
        progress(f"{nodes} lab hosts{' and the executor' if executor else ''} up"
                 f" in {time.monotonic() - started:.1f} s")
        return _status(paths)


def _build(
    paths: LabPaths, rootfs: Path, nodes: int, containers: int, progress: Progress, *, offline: bool,
    executor: bool,
) -> None:
    record = LabRecord(base=str(rootfs), containers=containers, offline=offline)
    addresses = [str(host_address(i)) for i in range(nodes)]
    placed = inventory.layout_nodes(nodes, containers, addresses)
    for index, node in enumerate(placed):
        record.hosts.append(
            HostRecord(
                name=node.name,
                index=index,
                address=node.address,
                container=node.container,
                sku=node.sku.name,
                netns=netns_name(node.name),
                veth=veth_name(index),
                directory=str(paths.hosts / node.name),
            )
        )
    if executor:
        record.executor = HostRecord(
            name=EXECUTOR_NAME, index=nodes, address=str(EXECUTOR_ADDRESS), container="", sku="",
            netns=netns_name(EXECUTOR_NAME), veth=EXECUTOR_VETH,
            directory=str(paths.hosts / EXECUTOR_NAME),
        )
    record.created_run_netns_mount = not network.run_netns_is_mounted()
    record.bridge = BRIDGE_NAME
    state.save(paths.state_file, record)

    _make_client_keys(paths)
    network.create_bridge()

    progress("starting the apt proxy and the site mirror on the bridge")
    record.proxy = proxy.start(paths.proxy_dir, paths.apt_cache, paths.logs)
    state.save(paths.state_file, record)
    progress("starting the site registry; building, verifying and loading the lab's bundle")
    record.registry = siteregistry.start(
        registry_url(), paths.registry_dir, paths.logs / "registry.log"
    )
    state.save(paths.state_file, record)
    content = mirror.populate(
        paths, load_standard(), registry_url(), apt_proxy=proxy.proxy_url(),
        resolve_in=rootfs if offline else None, executor_wheels=executor,
    )
    progress(content.figures.summary())
    progress(f"SIMULATED driver and toolkit .debs (`bundle build lab --deb` them): {paths.simulated_debs}")
    record.bundle = asdict(content.figures)
    record.mirror = mirror.start(paths.mirror_dir, paths.logs / "mirror.log")
    state.save(paths.state_file, record)
    if offline:
        # The proxy served this machine, the office, while it built the bundle; the site's
        # hosts get none, so nothing they install can come from anywhere but the bundle.
        progress("stopping the apt proxy: the hosts have no route to Debian")
        process.stop_all([record.proxy], grace_s=5)
        record.proxy = None
        state.save(paths.state_file, record)

    progress(f"starting {nodes} hosts{' and the executor' if executor else ''}")
    authorized_key = paths.ssh_key.with_suffix(".pub").read_text()
    gpus = {node.name: SimulatedGpus(node.name, node.sku.gpu, node.sku.gpus) for node in placed}
    known_hosts: list[str] = []
    for host in record.machines:
        hosts.mount_root(rootfs, host)
        key_dir = hosts.host_key_files(Path(host.directory) / "hostkeys", host.name)
        known_hosts.append(f"{host.name},{host.address} {hosts.public_host_key(key_dir)}")
        hosts.personalise(host, key_dir, authorized_key, gpus.get(host.name))
        network.add_host_network(host.netns, host.veth, host.address)
        host.process = hosts.start(host, hosts.console_log(paths.logs, host.name))
        state.save(paths.state_file, record)
    paths.known_hosts.write_text("\n".join(known_hosts) + "\n")
    _write_ssh_config(paths, record)
    hosts.wait_until_reachable(record.machines, paths.logs)
    inventory.write(
        inventory_file(),
        placed,
        str(SUBNET),
        inventory.LabProvisioning(
            ssh_config=paths.ssh_config,
            apt_proxy=None if offline else proxy.proxy_url(),
            mirror_url=mirror.mirror_url(),
            mirror_keyring_sha256=content.keyring_sha256,
            mirror_only=offline,
            registry_url=registry_url(),
            standard_file=content.standard_file,
            executor=str(EXECUTOR_ADDRESS) if executor else None,
        ),
    )
    _forget_rollouts()
    if executor:
        progress("installing ansible-core and ansible-runner on the executor from the site mirror")
        _install_executor()


def _install_executor() -> None:
    """Run playbooks/executor.yml against the lab's site, as a site's operator would once
    (`ansible-playbook -i SITE playbooks/executor.yml`); its artifacts stay under runs/lab/."""
    result = run_playbook(
        PlaybookRun(site_name=inventory.SITE_NAME, site_file=inventory_file(), playbook="executor.yml"),
        on_update=lambda _progress: None,
    )
    # The site file names the executor by its address, and the play adds it by that name.
    reached = str(EXECUTOR_ADDRESS) in result.hosts
    failures = [f"{name}: {host.failure}" for name, host in result.hosts.items() if host.failure]
    if result.rc != 0 or not reached:
        reason = "; ".join(failures) or (
            "playbooks/executor.yml reached no executor" if not reached
            else f"ansible-runner ended {result.status}, rc {result.rc}")
        raise EcohashError(f"installing the lab's executor failed ({result.directory}): {reason}")


def registry_url() -> str:
    """The lab's site registry: plain http on the bridge, as a registry on a site's own
    network often is."""
    return f"http://{BRIDGE_ADDRESS}:{REGISTRY_PORT}"


def _forget_rollouts() -> None:
    """The hosts are new machines: what rollouts recorded (and the facts Ansible cached)
    about their namesakes is not theirs, nor is a curtailment that was active on them.
    Past events' evidence stays: it describes what happened then."""
    shutil.rmtree(RolloutState.file_for(inventory.SITE_NAME).parent, ignore_errors=True)
    shutil.rmtree(facts_dir(inventory.SITE_NAME), ignore_errors=True)
    event_file(inventory.SITE_NAME).unlink(missing_ok=True)


def _make_client_keys(paths: LabPaths) -> None:
    paths.ssh_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    process.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ecohash-lab", "-f", paths.ssh_key]
    )


def _write_ssh_config(paths: LabPaths, record: LabRecord) -> None:
    """An ssh_config for the lab, usable by Ansible and people: `ssh -F <it> c01-r01-n01`."""
    blocks = []
    for host in record.machines:
        blocks.append(
            f"Host {host.name} {host.address}\n"
            f"    HostName {host.address}\n"
            f"    HostKeyAlias {host.name}\n"
            "    User root\n"
        )
    blocks.append(
        "Host *\n"
        f"    IdentityFile {paths.ssh_key}\n"
        "    IdentitiesOnly yes\n"
        f"    UserKnownHostsFile {paths.known_hosts}\n"
        "    StrictHostKeyChecking yes\n"
        "    GlobalKnownHostsFile /dev/null\n"
        "    BatchMode yes\n"
        "    LogLevel ERROR\n"
    )
    paths.ssh_config.write_text("\n".join(blocks))


def down(progress: Progress = _ignore) -> None:
    """Remove every process, mount, namespace, link and file of the running lab."""
    check_can_run()
    paths = LabPaths.current()
    with _locked(paths):
        started = time.monotonic()
        _down(paths)
        progress(f"lab down in {time.monotonic() - started:.1f} s")


def _down(paths: LabPaths) -> None:
    record = state.load(paths.state_file) or LabRecord()
    # Hosts first and all at once (each takes a second or two to power off), then daemons.
    host_processes = [h.process for h in record.machines if h.process is not None]
    daemons = [p for p in (record.proxy, record.mirror, record.registry) if p is not None]
    stray = [
        p for p in process.processes_rooted_under(paths.run) if p not in host_processes + daemons
    ]
    process.stop_all(host_processes + stray + daemons)
    # Whatever of a host outlived its nspawn (its systemd, if nspawn was killed) dies now.
    orphans = [p for p in map(process.TrackedProcess.find, cgroups.process_ids()) if p]
    process.kill_all(orphans)

    cgroups.remove_all()
    mounts.unmount_all_under(paths.run)
    for netns in {h.netns for h in record.machines} | set(network.lab_namespaces()):
        network.delete_namespace(netns)
    for link in network.lab_links():
        network.delete_link(link)
    if record.created_run_netns_mount:
        network.release_run_netns_mount()
    # Made by the lab (or by an earlier lab whose record is gone); nspawn recreates it
    # whenever it needs it, so an empty one is removed either way.
    if not mounts.is_mount_point(hosts.NSPAWN_RUN_DIR):
        with suppress(OSError):  # not empty: something else uses it now
            hosts.NSPAWN_RUN_DIR.rmdir()
    mounts.remove_tree(paths.run)
    lab_inventory = inventory_file()
    if lab_inventory.exists():
        lab_inventory.unlink()
        with suppress(OSError):
            lab_inventory.parent.rmdir()


def status() -> LabStatus:
    """The lab's hosts and whether each is up (its PID 1 runs and sshd answers)."""
    check_can_run()
    return _status(LabPaths.current())


def _status(paths: LabPaths) -> LabStatus:
    record = state.load(paths.state_file)
    if record is None:
        return LabStatus(hosts=[], inventory=None, ssh_config=None, proxy="down", mirror="down",
                         registry="down", bundle=None)
    lab_inventory = inventory_file()
    return LabStatus(
        hosts=[_host_status(host) for host in record.hosts],
        inventory=str(lab_inventory) if lab_inventory.exists() else None,
        ssh_config=str(paths.ssh_config) if paths.ssh_config.exists() else None,
        proxy="none: the lab is offline" if record.offline else _daemon_word(record.proxy, proxy.proxy_url()),
        mirror=_daemon_word(record.mirror, mirror.mirror_url()),
        registry=_daemon_word(record.registry, registry_url()),
        bundle=record.bundle,
        executor=_host_status(record.executor) if record.executor else None,
    )


def _host_status(host: HostRecord) -> HostStatus:
    alive = host.process is not None and host.process.is_alive()
    answers = alive and hosts.ssh_answers(host.address)
    if answers:
        state_word, detail = "up", "sshd answers"
    elif alive:
        state_word, detail = "down", "running, but sshd does not answer"
    else:
        state_word, detail = "down", "not running"
    return HostStatus(host.name, host.address, host.container, host.sku, state_word, detail)


def _daemon_word(tracked: process.TrackedProcess | None, url: str) -> str:
    return f"up at {url}" if tracked is not None and tracked.is_alive() else "down"


def ssh_command(node: str, command: list[str]) -> list[str]:
    """The ssh argv that reaches `node` with the lab's key and strict host-key checking."""
    check_can_run()
    paths = LabPaths.current()
    record = state.load(paths.state_file)
    if record is None:
        raise InvalidInputError("no lab is running; start one with `ecohash lab up`")
    host = record.host(node)
    return [
        "ssh",
        "-F",
        str(paths.ssh_config),
        *HOST_KEY_CHECKING_ARGS,
        host.name,
        *command,
    ]
