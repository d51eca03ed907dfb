"""The ssh-agent the controller forwards to a site's executor: as little as the wave needs.

Whoever holds the executor (often a GPU node that also runs tenants' workloads) can use a
forwarded agent for as long as it is forwarded. So the agent holds:
- only the keys the site's ssh_config (spec.provisioning.ssh.config_file) names for its
  nodes with IdentityFile. ssh falls back to all seven ~/.ssh/id_* files when none is
  named; those are the operator's personal keys and never go, so a site that names none
  is refused before any wave (`site_identity_files`, exit 2);
- each key destination-constrained (ssh-add -h, OpenSSH 8.9+): usable from here to the
  executor, and through the executor to the site's nodes, nowhere else. Constraints name
  hosts by their keys, looked up by ssh-add in a known_hosts file written here that
  lists the executor's keys under one name and the nodes' under another: two
  constraints whatever the site's size (the agent takes at most 1024 per key);
- a lifetime (ssh-add -t) of the wave's timeout; the agent is killed when the wave ends
  in any case, the lifetime bounds an agent a killed controller would leave behind.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ecohash.errors import EcohashError, InventoryError, Problem
from ecohash.inventory.site import Site
from ecohash.ssh.known_hosts import KnownHost

# The names the constraints' known_hosts file gives the executor and the site's nodes.
EXECUTOR_ALIAS = "ecohash-executor"
NODES_ALIAS = "ecohash-site-nodes"


class AgentError(EcohashError):
    """The short-lived agent for the executor cannot be made as the site needs it."""


@dataclass(frozen=True)
class SshHost:
    """A host as the controller's ssh reaches it, for `ssh -G`."""

    address: str
    port: int
    user: str
    ssh_config: Path | None

    def resolved(self, config: Path | str | None = None) -> dict[str, list[str]]:
        """ssh's effective configuration for the host (`ssh -G`): keyword -> its values;
        read from `config` instead of the host's own ssh_config if given ("none": none)."""
        config = config or self.ssh_config
        command = ["ssh", "-G", *(["-F", str(config)] if config else []),
                   "-p", str(self.port), "-l", self.user, "--", self.address]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise AgentError(f"cannot read ssh's configuration for {self.address}: {error}") from None
        if done.returncode != 0:
            lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
            raise AgentError(f"cannot read ssh's configuration for {self.address}: "
                             f"{lines[-1][:300] if lines else 'ssh -G failed'}")
        resolved: dict[str, list[str]] = {}
        for line in done.stdout.splitlines():
            keyword, _, value = line.partition(" ")
            resolved.setdefault(keyword.lower(), []).extend(value.split())
        return resolved


def site_identity_files(site: Site, node: SshHost) -> list[Path]:
    """The private keys the site's ssh_config names for its nodes (`node` is one) that exist
    here; a site whose ssh_config names none (ssh would offer ~/.ssh's defaults) is refused."""
    config = site.ssh_config_file
    if config is None:
        line = site.line_of(["spec", "provisioning", "executor"])
        raise InventoryError([Problem(str(site.file), line, (
            "spec.provisioning.ssh.config_file is not set: the executor reaches the nodes with only the "
            "keys a site's ssh_config names (IdentityFile), never ~/.ssh's defaults; name the site's "
            "ssh_config and its key there"))])
    named = node.resolved().get("identityfile", [])
    # ssh -G lists the defaults when nothing names a key: the same list as with no file at all.
    if named == node.resolved("none").get("identityfile", []):
        line = site.line_of(["spec", "provisioning", "ssh", "config_file"])
        raise InventoryError([Problem(str(site.file), line, (
            f"spec.provisioning.ssh.config_file: {config} names no IdentityFile for the nodes "
            f"({node.address}): the executor reaches them with only the keys the site names, never "
            "~/.ssh's defaults"))])
    paths = list(dict.fromkeys(Path(os.path.expanduser(name)) for name in named))
    present = [path for path in paths if path.is_file()]
    if not present:
        line = site.line_of(["spec", "provisioning", "ssh", "config_file"])
        raise InventoryError([Problem(str(site.file), line, (
            f"spec.provisioning.ssh.config_file: the IdentityFile {config} names for the nodes "
            f"({', '.join(map(str, paths))}) is not on this machine"))])
    return present


def known_hosts_files(host: SshHost) -> list[Path]:
    """The known_hosts files ssh checks `host`'s key against that exist here."""
    resolved = host.resolved()
    named = [*resolved.get("userknownhostsfile", []), *resolved.get("globalknownhostsfile", [])]
    paths = [Path(os.path.expanduser(name)) for name in named if name.lower() != "none"]
    return [path for path in dict.fromkeys(paths) if path.is_file()]


def constraint_hosts(executor_keys: list[KnownHost], node_keys: list[KnownHost]) -> str:
    """The known_hosts text ssh-add looks the constraints' two names up in."""
    usable = [(EXECUTOR_ALIAS, entry) for entry in executor_keys if entry.marker != "@revoked"]
    usable += [(NODES_ALIAS, entry) for entry in node_keys if entry.marker != "@revoked"]
    return "".join(entry.line(alias) + "\n" for alias, entry in usable)


def add_command(key: Path, hosts_file: Path, lifetime_s: int) -> list[str]:
    """ssh-add for one key: usable only to the executor and from it to the site's nodes,
    for `lifetime_s` seconds."""
    return ["ssh-add", "-q", "-t", str(lifetime_s), "-H", str(hosts_file),
            "-h", EXECUTOR_ALIAS, "-h", f"{EXECUTOR_ALIAS}>{NODES_ALIAS}", "--", str(key)]


@contextlib.contextmanager
def short_lived_agent(keys: list[Path], executor_keys: list[KnownHost], node_keys: list[KnownHost],
                      lifetime_s: int) -> Iterator[Path]:
    """An ssh-agent holding `keys`, constrained to the executor and its hops to the nodes."""
    if not keys:
        raise AgentError("none of the IdentityFiles the site's ssh_config names for the nodes exists here")
    if not executor_keys:
        raise AgentError("the executor's host key is in none of the site's known_hosts files")
    if not node_keys:
        raise AgentError("no node's host key is in the site's known_hosts files")
    with tempfile.TemporaryDirectory(prefix="ecohash-agent-") as directory:
        socket = Path(directory) / "agent"
        hosts_file = Path(directory) / "constraints_known_hosts"
        hosts_file.write_text(constraint_hosts(executor_keys, node_keys))
        agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(socket)], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while not socket.exists():
                if agent.poll() is not None or time.monotonic() > deadline:
                    raise AgentError("cannot start a short-lived ssh-agent for the executor")
                time.sleep(0.05)
            environment = {key: value for key, value in os.environ.items()
                           if key not in ("DISPLAY", "SSH_ASKPASS")}
            environment.update(SSH_AUTH_SOCK=str(socket), SSH_ASKPASS_REQUIRE="never")
            # No terminal either (a new session): a key with a passphrase is skipped, never
            # a prompt in the middle of the live display.
            results = [subprocess.run(add_command(key, hosts_file, lifetime_s), env=environment,
                                      stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
                                      check=False, start_new_session=True) for key in keys]
            if not any(done.returncode == 0 for done in results):
                said = [line.strip() for done in results for line in done.stderr.splitlines() if line.strip()]
                raise AgentError("none of the site's keys for the nodes (" + ", ".join(map(str, keys))
                                 + ") loads into the short-lived agent the executor reaches them with"
                                 + (f": {said[-1][:200]}" if said else " (a passphrase?)"))
            yield socket
        finally:
            agent.kill()
            agent.wait()
