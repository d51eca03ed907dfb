"""What ssh would do with a site's ssh_config for one node, worked out without running ssh.

Ansible reaches a node as `ssh -F <site ssh_config> -o Port=<ansible_port>
-o User=<ansible_user>` to its ansible_host; the options given with -o come before any line
of the files. The client (ecohash.ssh.client) logs in with what this resolves: HostName,
port, user, keys, ProxyCommand, and the known_hosts files and name a host key is looked up
under.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko

from ecohash.one_line import one_line

# What ssh reads without -F, and its defaults where an ssh_config names no files of its own.
USER_AND_SYSTEM_SSH_CONFIGS = (Path("~/.ssh/config"), Path("/etc/ssh/ssh_config"))
DEFAULT_USER_KNOWN_HOSTS = "~/.ssh/known_hosts ~/.ssh/known_hosts2"
DEFAULT_GLOBAL_KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts /etc/ssh/ssh_known_hosts2"


@dataclass(frozen=True)
class Target:
    """One node to log in to, as Ansible's inventory reaches it."""

    name: str
    address: str
    port: int = 22
    user: str = "root"
    ssh_config: Path | None = None

    @classmethod
    def of_host(cls, name: str, host_vars: Mapping[str, Any], ssh_config: Path | None) -> Target:
        """How Ansible reaches a node: its inventory variables and the site's ssh_config."""
        return cls(name=name, address=host_vars["ansible_host"], port=host_vars["ansible_port"],
                   user=host_vars["ansible_user"], ssh_config=ssh_config)


class NodeNotReady(Exception):
    """The node cannot be reached or used over SSH; the message is the one-line reason."""

    def __init__(self, reason: str, python: str | None = None):
        super().__init__(reason)
        self.python = python


@dataclass(frozen=True)
class SshOptions:
    """What ssh would use to reach a node: the first value each keyword obtains."""

    hostname: str
    port: int
    user: str
    known_hosts_name: str
    known_hosts_files: tuple[Path, ...]
    identity_files: tuple[Path, ...]
    look_for_keys: bool
    allow_agent: bool
    proxy_command: str | None


def ssh_options(target: Target) -> SshOptions:
    """What ssh would use for `target`, its -o options first; NodeNotReady when it cannot tell."""
    config = paramiko.SSHConfig()
    # Ansible passes -o Port= and -o User= (ecohash's inventory always sets ansible_port and
    # ansible_user), and ssh takes options given with -o before any line of the files: they
    # are the first obtained values. Ahead of the files they are here too, %p and %r in
    # ProxyCommand included; as values, a block the way paramiko keeps a parsed one (its
    # list is private, but paramiko is pinned and the tests of -o User= would see a change),
    # never as config text: a user name with a line break would add lines of its own, such
    # as a ProxyCommand run on this machine. Ansible's -o ConnectTimeout= likewise overrides
    # the files', which is why ConnectTimeout is not read: timeout_s plays that part.
    config._config.append(  # type: ignore[attr-defined]  # private: see above
        {"host": ["*"], "config": {"port": str(target.port), "user": target.user}})
    if target.ssh_config is not None:
        config_files = [target.ssh_config]
    else:
        # ssh without -F reads these, when they exist.
        config_files = [path for path in USER_AND_SYSTEM_SSH_CONFIGS if path.expanduser().is_file()]
    where = " or ".join(str(path) for path in config_files)
    try:
        for path in config_files:
            with path.expanduser().open() as config_file:
                config.parse(config_file)
        # Ansible connects to ansible_host, so that is what Host patterns are matched against.
        found = config.lookup(target.address)
    except (OSError, ImportError, paramiko.SSHException) as error:  # ImportError: Match exec needs invoke
        raise NodeNotReady(f"cannot use ssh_config {where}: {one_line(str(error))}") from None
    if str(found.get("proxyjump") or "none").lower() != "none":
        # paramiko has no ProxyJump; connecting directly instead would probe another path
        # than Ansible's, and could pass where Ansible fails or the reverse.
        raise NodeNotReady(f"ProxyJump in {where} is not supported by the preflight; use ProxyCommand")
    hostname = found["hostname"]
    port = int(found["port"])
    identity_files = tuple(Path(path).expanduser() for path in found.get("identityfile", []))
    identities_only = found.get("identitiesonly", "no").lower() == "yes"
    proxy_command = found.get("proxycommand")
    return SshOptions(
        hostname=hostname,
        port=port,
        user=found["user"],
        # OpenSSH looks the key up under HostKeyAlias alone, port or not; otherwise under
        # the HostName it connects to, as [host]:port when the port is not 22.
        known_hosts_name=found.get("hostkeyalias") or _host_port(hostname.lower(), port),
        known_hosts_files=_paths(
            found.get("userknownhostsfile", DEFAULT_USER_KNOWN_HOSTS) + " "
            + found.get("globalknownhostsfile", DEFAULT_GLOBAL_KNOWN_HOSTS)
        ),
        identity_files=identity_files,
        # As ssh: the default ~/.ssh/id_* files only when no IdentityFile is configured, and
        # the agent's keys unless IdentitiesOnly (paramiko cannot offer just the agent keys
        # that match the IdentityFiles, which is what ssh would still do).
        look_for_keys=not identity_files,
        allow_agent=not identities_only and found.get("identityagent", "").lower() != "none",
        proxy_command=proxy_command if proxy_command and proxy_command.lower() != "none" else None,
    )


def _host_port(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


def _paths(text: str) -> tuple[Path, ...]:
    return tuple(Path(word).expanduser() for word in shlex.split(text) if word.lower() != "none")
