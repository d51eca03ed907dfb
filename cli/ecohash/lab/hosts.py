"""One lab host: a copy-on-write root, its own identity, and systemd as PID 1 in its namespace.

A host's root is an overlay whose lower layer is the shared read-only base and whose upper
layer is the host's own. Before boot the lab writes the host's identity into that upper
layer (hostname, machine id, SSH host key, the lab's authorized key, the simulated
hardware), then boots it with `systemd-nspawn --boot` inside the host's network
namespace.
"""

from __future__ import annotations

import shutil
import socket
import time
import uuid
from pathlib import Path

from ecohash import process
from ecohash.errors import EcohashError
from ecohash.lab import cgroups
from ecohash.lab.network import netns_path
from ecohash.lab.simhardware import SimulatedGpus
from ecohash.lab.state import HostRecord
from ecohash.process import TrackedProcess

# systemd-nspawn needs this directory; /run is no tmpfs on such VMs, and nspawn cannot remove
# the "disk file system" it leaves there, so each host gets a private tmpfs on it.
NSPAWN_RUN_DIR = Path("/run/systemd/nspawn")
SSH_PORT = 22


def mount_root(base: Path, host: HostRecord) -> None:
    """Mount the host's overlay root: the base read-only below, the host's own layer above."""
    directory = Path(host.directory)
    for part in ("upper", "work", "root"):
        (directory / part).mkdir(parents=True, exist_ok=True)
    process.run(
        [
            "mount",
            "-t",
            "overlay",
            "overlay",
            "-o",
            f"lowerdir={base},upperdir={directory / 'upper'},workdir={directory / 'work'}",
            host.root,
        ]
    )


def personalise(
    host: HostRecord, host_key_dir: Path, authorized_key: str, gpus: SimulatedGpus | None
) -> None:
    """Write the host's identity and the lab's settings into its (mounted) root."""
    root = host.root
    (root / "etc" / "hostname").write_text(f"{host.name}\n")
    (root / "etc" / "hosts").write_text(
        f"127.0.0.1\tlocalhost\n127.0.1.1\t{host.name}\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    )
    (root / "etc" / "machine-id").write_text(uuid.uuid4().hex + "\n")

    ssh_dir = root / "etc" / "ssh"
    for key in host_key_dir.iterdir():
        target = ssh_dir / key.name
        shutil.copyfile(key, target)
        target.chmod(0o600 if not key.name.endswith(".pub") else 0o644)
    root_ssh = root / "root" / ".ssh"
    root_ssh.mkdir(mode=0o700, exist_ok=True)
    (root_ssh / "authorized_keys").write_text(authorized_key)
    (root_ssh / "authorized_keys").chmod(0o600)

    # Nothing about apt: like a freshly installed node, a host knows neither the site's
    # proxy nor its mirror until the base role configures them from the site file.
    if gpus is not None:  # the executor is no GPU node
        gpus.write_into(root)


def start(host: HostRecord, log_file: Path) -> TrackedProcess:
    """Boot the host: systemd as PID 1 under systemd-nspawn, in the host's network namespace."""
    NSPAWN_RUN_DIR.mkdir(parents=True, exist_ok=True)
    nspawn = [
        "systemd-nspawn",
        "--boot",
        f"--directory={host.root}",
        f"--machine={host.name}",
        f"--hostname={host.name}",
        # There is no systemd on this machine to register with or to give the host a scope.
        "--register=no",
        "--keep-unit",
        f"--network-namespace-path={netns_path(host.netns)}",
        "--resolv-conf=off",
        "--timezone=off",
        "--link-journal=no",
        "--console=read-only",
    ]
    # unshare gives nspawn a private mount namespace for the tmpfs; without --fork it execs,
    # so the PID we track is nspawn's own and SIGTERM reaches it (it powers the host off).
    wrapper = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "/bin/sh",
        "-c",
        f"{cgroups.enter_command(cgroups.create(host.name))} && "
        f'mount -t tmpfs -o mode=0755 ecolab-nspawn {NSPAWN_RUN_DIR} && exec "$@"',
        "ecolab-host",
        *nspawn,
    ]
    return process.start_daemon(wrapper, log_file)


def ssh_answers(address: str, timeout_s: float = 0.5) -> bool:
    """True when something completes an SSH banner exchange on the host's port 22."""
    try:
        with socket.create_connection((address, SSH_PORT), timeout=timeout_s) as connection:
            connection.settimeout(timeout_s)
            return connection.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def wait_until_reachable(hosts: list[HostRecord], log_dir: Path, timeout_s: float = 60.0) -> None:
    """Wait for every host's sshd; fail with the host's console log if one dies or stalls."""
    pending = {host.name: host for host in hosts}
    deadline = time.monotonic() + timeout_s
    while pending:
        process.reap_children()
        for name, host in list(pending.items()):
            if host.process is not None and not host.process.is_alive():
                raise EcohashError(
                    f"lab host {name} exited while booting:\n{_log_tail(log_dir, name)}"
                )
            if ssh_answers(host.address):
                del pending[name]
        if not pending:
            return
        if time.monotonic() > deadline:
            names = ", ".join(sorted(pending))
            raise EcohashError(
                f"lab hosts not reachable over SSH after {timeout_s:.0f} s: {names}\n"
                + _log_tail(log_dir, next(iter(sorted(pending))))
            )
        time.sleep(0.1)


def console_log(log_dir: Path, name: str) -> Path:
    return log_dir / f"{name}.console.log"


def _log_tail(log_dir: Path, name: str, lines: int = 15) -> str:
    try:
        text = console_log(log_dir, name).read_text(errors="replace")
    except OSError:
        return "(no console log)"
    return "\n".join(text.splitlines()[-lines:])


def host_key_files(directory: Path, name: str) -> Path:
    """Generate the host's own ed25519 SSH host key pair into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    key = directory / "ssh_host_ed25519_key"
    process.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{name}", "-f", key])
    return directory


def public_host_key(key_dir: Path) -> str:
    """The host key as known_hosts wants it: "ssh-ed25519 AAAA..." without the comment."""
    key_type, key_data = (key_dir / "ssh_host_ed25519_key.pub").read_text().split()[:2]
    return f"{key_type} {key_data}"
