"""The preflight against a real SSH server on localhost, configured the way the lab is."""

from __future__ import annotations

import base64
import hashlib
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import paramiko
import pytest

from ecohash.inventory import load_site
from ecohash.rollout.preflight import (
    PYTHON_VERSION_COMMAND,
    ROOT_CHECK_COMMAND,
    SUDO_CHECK_COMMAND,
    ProbeResult,
    probe,
    probe_all,
)
from ecohash.rollout.provision import ProvisionRequest, provision
from ecohash.ssh.config import Target
from tests.conftest import EXAMPLE_SITE
from tests.rollout.sshserver import (
    Reply,
    SshServer,
    closed_port,
    known_hosts_line,
    new_ed25519_key,
    silent_listener,
)

HEALTHY_NODE = {
    ROOT_CHECK_COMMAND: Reply(0, "0\n"),
    SUDO_CHECK_COMMAND: Reply(0),
    PYTHON_VERSION_COMMAND: Reply(0, "3.11.2\n"),
}

# Relays stdin/stdout to HOST PORT: a ProxyCommand, as `ssh -W` on a bastion would be.
RELAY = """\
import os, socket, sys, threading
connection = socket.create_connection((sys.argv[1], int(sys.argv[2])))
def forward():
    while data := os.read(0, 65536):
        connection.sendall(data)
    connection.shutdown(socket.SHUT_WR)
threading.Thread(target=forward, daemon=True).start()
while data := connection.recv(65536):
    os.write(1, data)
"""


class QuietDisplay:
    """A rollout's display that shows nothing; a dry run opens no wave."""

    def say(self, text: str) -> None:
        pass

    def wave(self, title: str) -> AbstractContextManager[Callable[[object], None]]:
        raise AssertionError("a dry run runs no wave")


@dataclass
class Node:
    """A test node: its server, and the controller's files that reach it, in tmp_path."""

    server: SshServer
    host_key: paramiko.PKey
    directory: Path
    client_key_file: Path

    @property
    def known_hosts(self) -> Path:
        return self.directory / "known_hosts"

    def ssh_config(self, strict: str = "yes", identity: Path | None = None, node_lines: str = "",
                   alias: bool = True) -> Path:
        """An ssh_config as the lab writes it."""
        path = self.directory / "ssh_config"
        path.write_text(
            "Host node1 127.0.0.1\n"
            "    HostName 127.0.0.1\n"
            f"    Port {self.server.port}\n"
            + ("    HostKeyAlias node1\n" if alias else "")
            + "    User root\n"
            + node_lines
            + "Host *\n"
            f"    IdentityFile {identity or self.client_key_file}\n"
            "    IdentitiesOnly yes\n"
            f"    UserKnownHostsFile {self.known_hosts}\n"
            f"    StrictHostKeyChecking {strict}\n"
            "    GlobalKnownHostsFile /dev/null\n"
            "    BatchMode yes\n"
        )
        return path

    def target(self, user: str = "root", strict: str = "yes", identity: Path | None = None,
               node_lines: str = "", alias: bool = True) -> Target:
        """The node as Ansible's inventory names it, with an ssh_config written for it."""
        config = self.ssh_config(strict=strict, identity=identity, node_lines=node_lines, alias=alias)
        return Target("node1", "127.0.0.1", self.server.port, user, config)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    host_key = new_ed25519_key()
    client_key_file = tmp_path / "id_ed25519"
    client_key = new_ed25519_key(client_key_file)
    replies = dict(HEALTHY_NODE)
    with SshServer([host_key], client_key, replies, users=("root", "deploy")) as server:
        known = Node(server, host_key, tmp_path, client_key_file)
        known.known_hosts.write_text(known_hosts_line("node1,127.0.0.1", host_key))
        yield known


def openssh_fingerprint(key: paramiko.PKey) -> str:
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def test_a_healthy_node_is_ok_and_its_python_reported(node: Node) -> None:
    result = probe(node.target())

    assert (result.name, result.ok, result.reason, result.python) == ("node1", True, None, "3.11.2")
    # Root needs no sudo; Ansible's become is off for root.
    assert node.server.commands_run == [ROOT_CHECK_COMMAND, PYTHON_VERSION_COMMAND]


@pytest.mark.parametrize(
    "names",
    [
        pytest.param("node1", id="alias"),
        pytest.param(paramiko.HostKeys.hash_host("node1"), id="hashed alias"),
        pytest.param("other,node?", id="pattern"),
    ],
)
def test_known_hosts_entries_are_matched_as_openssh_matches_them(node: Node, names: str) -> None:
    node.known_hosts.write_text("# comment\n\n" + known_hosts_line(names, node.host_key))

    assert probe(node.target()).ok


def test_a_host_key_is_looked_up_under_its_alias_and_not_its_address(node: Node) -> None:
    # With HostKeyAlias, OpenSSH looks up the alias alone, without the port, and never
    # the address: the same key listed under the address only is unknown.
    node.known_hosts.write_text(
        known_hosts_line(f"[127.0.0.1]:{node.server.port},127.0.0.1", node.host_key)
    )

    result = probe(node.target())

    assert not result.ok
    assert result.reason is not None
    assert result.reason.startswith(f"host key unknown: node1 (node1) is not in {node.known_hosts};")


def test_without_an_alias_the_key_is_looked_up_as_host_and_port(node: Node) -> None:
    node.known_hosts.write_text(known_hosts_line(f"[127.0.0.1]:{node.server.port}", node.host_key))

    assert probe(node.target(alias=False)).ok


def test_a_changed_host_key_is_refused_naming_both_fingerprints(node: Node) -> None:
    listed = new_ed25519_key()
    node.known_hosts.write_text(known_hosts_line("node1", listed))

    result = probe(node.target())

    assert result.reason == (
        f"host key mismatch: 127.0.0.1 presents ssh-ed25519 {openssh_fingerprint(node.host_key)}, "
        f"known_hosts has ssh-ed25519 {openssh_fingerprint(listed)} for node1"
    )
    assert "=" not in result.reason  # OpenSSH's fingerprints have no base64 padding
    assert node.server.commands_run == []


def test_an_unknown_host_is_refused(node: Node) -> None:
    node.known_hosts.write_text("")

    result = probe(node.target())

    assert result.reason == (
        f"host key unknown: node1 (node1) is not in {node.known_hosts}; add its key after checking "
        f"it out of band (it presents ssh-ed25519 {openssh_fingerprint(node.host_key)})"
    )
    assert node.server.commands_run == []


def test_a_revoked_host_key_is_refused_even_when_listed(node: Node) -> None:
    node.known_hosts.write_text(
        known_hosts_line("node1", node.host_key) + "@revoked " + known_hosts_line("*", node.host_key)
    )

    result = probe(node.target(strict="no"))

    assert result.reason == (
        f"host key revoked: 127.0.0.1 presents ssh-ed25519 {openssh_fingerprint(node.host_key)}, "
        "marked @revoked in known_hosts"
    )


@pytest.mark.parametrize("strict", ["yes", "ask", "accept-new", "no", "off", "false"])
@pytest.mark.parametrize("listed", ["nothing", "another key"])
def test_no_strict_host_key_checking_of_an_ssh_config_turns_checking_off(node: Node, strict: str,
                                                                         listed: str) -> None:
    # ssh gets -o StrictHostKeyChecking=yes, which wins over every file: the probe checks
    # as ssh then does, whatever the config says.
    text = known_hosts_line("node1", new_ed25519_key()) if listed == "another key" else ""
    node.known_hosts.write_text(text)

    result = probe(node.target(strict=strict))

    expected = "host key unknown: " if listed == "nothing" else "host key mismatch: "
    assert (result.reason or "").startswith(expected), result.reason
    assert node.server.commands_run == []
    assert node.known_hosts.read_text() == text  # nothing is ever written


def test_a_known_hosts_file_of_dev_null_leaves_every_host_unknown(node: Node) -> None:
    # The usual way to stop checking host keys: no file to check them against, nothing asked.
    lines = "    UserKnownHostsFile /dev/null\n    StrictHostKeyChecking no\n"

    result = probe(node.target(node_lines=lines))

    assert result.reason == (
        "host key unknown: node1 (node1) is not in any known_hosts file (there is none); add its key "
        f"after checking it out of band (it presents ssh-ed25519 {openssh_fingerprint(node.host_key)})"
    )
    assert node.server.commands_run == []


def test_a_user_name_never_becomes_a_line_of_ssh_configuration(node: Node) -> None:
    # A name that got past the site model: its second line would be a ProxyCommand run here.
    pwned = node.directory / "pwned"

    result = probe(node.target(user=f"root\n  ProxyCommand touch {pwned}"))

    assert not pwned.exists()
    assert not result.ok
    assert result.reason is not None and "\n" not in result.reason
    assert node.server.commands_run == []


def test_the_host_key_type_known_is_asked_for_first(tmp_path: Path) -> None:
    # The server has an Ed25519 and an RSA key; known_hosts lists only the RSA one. OpenSSH
    # asks for the known type first, and so must the probe, or it sees a changed host.
    ed25519_key, rsa_key = new_ed25519_key(), paramiko.RSAKey.generate(2048)
    client_key = new_ed25519_key(tmp_path / "id_ed25519")
    with SshServer([ed25519_key, rsa_key], client_key, dict(HEALTHY_NODE)) as server:
        node = Node(server, rsa_key, tmp_path, tmp_path / "id_ed25519")
        node.known_hosts.write_text(known_hosts_line("node1", rsa_key))

        assert probe(node.target()).ok


def test_a_closed_port_is_connection_refused(node: Node) -> None:
    target = Target("node1", "127.0.0.1", closed_port(), "root", node.ssh_config())

    assert probe(target).reason == "unreachable: connection refused"


def test_a_port_that_never_speaks_ssh_is_no_banner_within_the_timeout(node: Node) -> None:
    with silent_listener() as port:
        result = probe(Target("node1", "127.0.0.1", port, "root", node.ssh_config()), timeout_s=1)

    assert result.reason == "unreachable: no SSH banner within 1 s"
    assert result.elapsed_s < 3


def test_a_key_the_node_does_not_accept_fails_authentication_naming_the_file_only(node: Node) -> None:
    wrong_key_file = node.directory / "id_wrong"
    new_ed25519_key(wrong_key_file)

    result = probe(node.target(identity=wrong_key_file))

    assert result.reason == f"authentication failed for root@127.0.0.1 (keys tried: {wrong_key_file})"
    key_text = wrong_key_file.read_text().splitlines()
    assert not any(line in result.reason for line in key_text if "PRIVATE KEY" not in line)


def test_a_missing_key_file_is_named_as_missing(node: Node) -> None:
    missing = node.directory / "id_gone"

    result = probe(node.target(identity=missing))

    assert result.reason == (
        f"authentication failed for root@127.0.0.1 (keys tried: none; missing or unreadable: {missing})"
    )


def test_a_user_without_passwordless_sudo_has_no_privilege_escalation(node: Node) -> None:
    node.server.replies[SUDO_CHECK_COMMAND] = Reply(1, stderr="sudo: a password is required\n")

    result = probe(node.target(user="deploy"))

    assert result.reason == (
        "no privilege escalation: `sudo -n true` failed as deploy: sudo: a password is required"
    )
    assert node.server.commands_run == [SUDO_CHECK_COMMAND]


def test_a_user_with_passwordless_sudo_is_ok(node: Node) -> None:
    # The Target's user wins over the config's `User root`, as Ansible's -o User= does.
    result = probe(node.target(user="deploy"))

    assert result.ok
    assert node.server.commands_run == [SUDO_CHECK_COMMAND, PYTHON_VERSION_COMMAND]


def test_root_that_is_not_uid_0_has_no_privilege_escalation(node: Node) -> None:
    node.server.replies[ROOT_CHECK_COMMAND] = Reply(0, "1000\n")

    result = probe(node.target())

    assert result.reason == "no privilege escalation: logged in as root, but `id -u` gave '1000'"


def test_a_python_too_old_for_ansible_is_refused_and_reported(node: Node) -> None:
    node.server.replies[PYTHON_VERSION_COMMAND] = Reply(0, "3.6.9\n")

    result = probe(node.target())

    assert (result.ok, result.reason, result.python) == (
        False, "python3 3.6.9 is too old; Ansible needs >= 3.8", "3.6.9"
    )


def test_a_node_without_python3_is_refused(node: Node) -> None:
    del node.server.replies[PYTHON_VERSION_COMMAND]  # the server answers 127, not found

    result = probe(node.target())

    assert result.reason == "no python3 on the node (Ansible needs Python >= 3.8)"


def test_a_command_that_hangs_is_bounded_by_the_timeout(node: Node) -> None:
    node.server.replies[PYTHON_VERSION_COMMAND] = Reply(0, hang=True)

    result = probe(node.target(), timeout_s=0.5)

    assert result.reason == f"`{PYTHON_VERSION_COMMAND}` did not finish within 0.5 s"
    assert result.elapsed_s < 2


def test_proxyjump_is_refused_rather_than_connecting_directly(node: Node) -> None:
    target = node.target(node_lines="    ProxyJump bastion.example\n")

    result = probe(target)

    assert result.reason == (
        f"ProxyJump in {target.ssh_config} is not supported by the preflight; use ProxyCommand"
    )
    assert node.server.commands_run == []


def test_proxycommand_carries_the_connection(node: Node) -> None:
    relay = node.directory / "relay.py"
    relay.write_text(RELAY)

    result = probe(node.target(node_lines=f"    ProxyCommand {sys.executable} {relay} %h %p\n"))

    assert result.ok, result.reason


def test_a_proxycommand_that_fails_says_why(node: Node) -> None:
    # As ssh does, the probe runs the command with `exec`: the failing program is the shell.
    failing = 'ProxyCommand sh -c "echo bastion.example: connection refused >&2; exit 255"\n'

    result = probe(node.target(node_lines=f"    {failing}"))

    assert result.reason == "unreachable: ProxyCommand exited with status 255: bastion.example: connection refused"
    assert result.elapsed_s < 5


def test_a_dry_run_s_preflight_runs_nothing_a_user_name_says(
    write_site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, home: Path
) -> None:
    monkeypatch.setenv("ECOHASH_STATE_DIR", str(tmp_path / "state"))
    # Nodes on this machine behind a closed port: each probe ends at once, refused.
    site = load_site(write_site(
        EXAMPLE_SITE,
        ("mgmt_cidr: 10.20.0.0/20", "mgmt_cidr: 127.0.0.0/24"),
        ("mgmt_ip: 10.20.1.11", "mgmt_ip: 127.0.0.11"),
        ("mgmt_ip: 10.20.1.12", "mgmt_ip: 127.0.0.12"),
    ))
    pwned = tmp_path / "pwned"
    ssh = site.provisioning.ssh
    # As if the model had let it through: frozen models are set only this way.
    object.__setattr__(ssh, "port", closed_port())
    object.__setattr__(ssh, "user", f"root\n  ProxyCommand touch {pwned}")

    report = provision(ProvisionRequest(site, dry_run=True), QuietDisplay(), threading.Event())

    assert not pwned.exists()
    reasons = {node["name"]: node["reason"] for node in report["nodes"]}
    assert reasons == dict.fromkeys(
        ["c01-r01-n01", "c01-r01-n02", "c01-r01-n03", "c01-r01-n04"], "preflight: unreachable: connection refused"
    )


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home directory of the test's own with an empty ~/.ssh, and no ssh-agent."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return home


def test_without_ssh_config_the_user_s_default_key_and_known_hosts_are_used(node: Node, home: Path) -> None:
    node.client_key_file.rename(home / ".ssh" / "id_ed25519")
    (home / ".ssh" / "known_hosts").write_text(
        known_hosts_line(f"[127.0.0.1]:{node.server.port}", node.host_key)
    )

    result = probe(Target("node1", "127.0.0.1", node.server.port))

    assert result.ok, result.reason


def test_without_ssh_config_the_user_s_own_ssh_config_is_read(node: Node, home: Path) -> None:
    # As ssh without -F: here it names a key that is not a default one, and an alias.
    node.client_key_file.rename(home / ".ssh" / "site_key")
    (home / ".ssh" / "config").write_text(
        "Host 127.0.0.1\n    HostKeyAlias node1\n    IdentityFile ~/.ssh/site_key\n"
    )
    (home / ".ssh" / "known_hosts").write_text(known_hosts_line("node1", node.host_key))

    result = probe(Target("node1", "127.0.0.1", node.server.port))

    assert result.ok, result.reason


def test_probe_all_probes_every_node_and_reports_each_as_it_finishes(node: Node) -> None:
    config = node.ssh_config()
    targets = [Target(f"c01-r01-n{i:02d}", "127.0.0.1", node.server.port, "root", config) for i in range(40)]
    reported: list[tuple[ProbeResult, threading.Thread]] = []

    results = probe_all(
        targets, workers=16, on_result=lambda result: reported.append((result, threading.current_thread()))
    )

    assert list(results) == [target.name for target in targets]
    assert all(result.ok for result in results.values()), [r.reason for r in results.values() if not r.ok]
    assert sorted(result.name for result, _ in reported) == sorted(results)
    assert {thread for _, thread in reported} == {threading.current_thread()}


def test_probe_all_refuses_two_targets_of_one_name() -> None:
    with pytest.raises(ValueError, match="repeated: n1"):
        probe_all([Target("n1", "127.0.0.1"), Target("n1", "127.0.0.2")])
