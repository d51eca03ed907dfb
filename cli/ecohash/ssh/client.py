"""Logging in to a node over SSH the way Ansible's ssh would, with host keys always checked.

A node is reached as `ssh -F <site ssh_config> -o StrictHostKeyChecking=yes -o
Port=<ansible_port> -o User=<ansible_user>` reaches its ansible_host (without a site
ssh_config, ssh reads ~/.ssh/config and /etc/ssh/ssh_config instead): the same Host block,
HostName, ProxyCommand, keys, known_hosts files and HostKeyAlias. The rollout's preflight,
curtailment's node links and anything else that speaks SSH itself log in through here, so
that each of them reaches a node by the path Ansible will take.

Host keys are checked against known_hosts only, whatever StrictHostKeyChecking the files
say, as ssh does with that option on its command line (ecohash.ssh.host_key_checking);
nothing here ever writes a known_hosts file.
"""

from __future__ import annotations

import contextlib
import errno
import hmac
import logging
import os
import re
import select
import shlex
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import paramiko

from ecohash.one_line import first_line, one_line
from ecohash.ssh.config import NodeNotReady, SshOptions, Target, ssh_options

# paramiko logs every failed handshake at ERROR with a traceback; each of those becomes a
# probe's one-line reason, so without a handler of the application's they would only
# repeat it on stderr (Python's last-resort handler prints when no handler is found).
SSH_LOG_CHANNEL = f"{__name__}.ssh"
logging.getLogger(SSH_LOG_CHANNEL).addHandler(logging.NullHandler())

# Host key algorithms a server may sign with, per key type as known_hosts names it.
_HOST_KEY_ALGORITHMS = {"ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")}


def host_key_known(target: Target) -> bool:
    """Whether known_hosts lists a key for the node, as ssh would look it up; reads no network.

    A node without one would be refused at its first connection anyway: a caller that only
    reads (a dry run) can leave it uncontacted instead of waiting for it to answer.
    """
    try:
        options = ssh_options(target)
    except NodeNotReady:
        return False
    return bool(_read_known_host_keys(options.known_hosts_name, options.known_hosts_files).keys)


# --- Host keys -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _KnownHostKeys:
    """The keys known_hosts lists for one name, as ssh would find them."""

    name: str
    files: tuple[Path, ...]
    keys: tuple[paramiko.PKey, ...]
    revoked: tuple[paramiko.PKey, ...]


def _read_known_host_keys(name: str, files: Sequence[Path]) -> _KnownHostKeys:
    keys: list[paramiko.PKey] = []
    revoked: list[paramiko.PKey] = []
    for path in files:
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            continue  # ssh, too, goes on without a known_hosts file it cannot read
        for line in lines:
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            marker = fields.pop(0) if fields[0].startswith("@") else None
            # Names are matched before any key is decoded: a site's known_hosts holds every
            # node, and each probe needs only its own lines.
            if len(fields) < 3 or marker not in (None, "@revoked") or not _names_match(fields[0], name):
                continue  # @cert-authority: paramiko cannot check host certificates
            key = _decode_key(fields[1], fields[2])
            if key is not None:
                (revoked if marker else keys).append(key)
    return _KnownHostKeys(name, tuple(files), tuple(keys), tuple(revoked))


def _names_match(names: str, name: str) -> bool:
    """OpenSSH's matching of a known_hosts names field: hashed, or patterns with * ? and !."""
    if names.startswith("|1|"):
        try:
            return hmac.compare_digest(paramiko.HostKeys.hash_host(name, names), names)
        except (ValueError, IndexError, AssertionError):
            return False  # a damaged hashed entry matches nothing
    matched = False
    for pattern in names.split(","):
        negated = pattern.startswith("!")
        expression = "".join(
            ".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern.lstrip("!")
        )
        if re.fullmatch(expression, name, re.IGNORECASE):
            if negated:
                return False
            matched = True
    return matched


def _decode_key(key_type: str, data: str) -> paramiko.PKey | None:
    entry = None
    with contextlib.suppress(paramiko.hostkeys.InvalidHostKey, paramiko.SSHException, ValueError):
        entry = paramiko.hostkeys.HostKeyEntry.from_line(f"x {key_type} {data}")
    return entry.key if entry is not None else None


def _describe(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.fingerprint}"


def _same_key(one: paramiko.PKey, other: paramiko.PKey) -> bool:
    return one.asbytes() == other.asbytes()


class _KnownHostsPolicy(paramiko.MissingHostKeyPolicy):
    """Decides on the server's host key as OpenSSH's StrictHostKeyChecking=yes does.

    The SSH client is given no host keys of its own, so paramiko hands every server key
    here; refusing raises the reason, which ends the connection before authentication.
    """

    def __init__(self, target: Target, known: _KnownHostKeys):
        self.target = target
        self.known = known
        self.host_key_accepted = False

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        reason = self._refusal(key)
        if reason is not None:
            raise NodeNotReady(reason)
        self.host_key_accepted = True

    def _refusal(self, key: paramiko.PKey) -> str | None:
        address, known = self.target.address, self.known
        if any(_same_key(key, revoked) for revoked in known.revoked):
            return f"host key revoked: {address} presents {_describe(key)}, marked @revoked in known_hosts"
        if any(_same_key(key, listed) for listed in known.keys):
            return None
        if known.keys:
            listed = ", ".join(_describe(listed) for listed in known.keys)
            return (
                f"host key mismatch: {address} presents {_describe(key)}, "
                f"known_hosts has {listed} for {known.name}"
            )
        searched = [str(path) for path in known.files if path.is_file()]
        where = ", ".join(searched) or "any known_hosts file (there is none)"
        return (
            f"host key unknown: {self.target.name} ({known.name}) is not in {where}; add its key after "
            f"checking it out of band (it presents {_describe(key)})"
        )


def _transport_preferring(known: _KnownHostKeys) -> Callable[..., paramiko.Transport]:
    """A Transport asking first for the host key types known_hosts has for this node.

    ssh does the same: a server with both an RSA and an Ed25519 key, known by its RSA key
    only, must not be taken for a changed host because it offered its Ed25519 key first.
    """

    def make(sock: socket.socket | paramiko.ProxyCommand,
             disabled_algorithms: dict[str, list[str]] | None = None) -> paramiko.Transport:
        transport = paramiko.Transport(sock, disabled_algorithms=disabled_algorithms)
        options = transport.get_security_options()
        known_types = [key.get_name() for key in known.keys]
        wanted = [alg for kind in known_types for alg in _HOST_KEY_ALGORITHMS.get(kind, (kind,))]
        first = [alg for alg in dict.fromkeys(wanted) if alg in options.key_types]
        options.key_types = first + [alg for alg in options.key_types if alg not in first]
        return transport

    return make


# --- Connecting ------------------------------------------------------------------------------


class _ProxyCommand(paramiko.ProxyCommand):
    """paramiko's ProxyCommand, with a socket's end of stream and a close safe to repeat.

    paramiko's own recv spins until its timeout once the command has exited, and its close
    signals a process id that the transport thread and the probe may both have reaped.
    """

    def _pipe(self, pipe: IO[bytes] | None) -> IO[bytes]:
        # paramiko starts the command with stdin, stdout and stderr all piped.
        assert pipe is not None
        return pipe

    def recv(self, size: int) -> bytes:
        stdout = self._pipe(self.process.stdout)
        readable, _, _ = select.select([stdout], [], [], self.timeout)
        if not readable:
            raise TimeoutError
        # Whatever is there, as a socket returns; b"" once the command has exited.
        return os.read(stdout.fileno(), size)

    def close(self) -> None:
        self.process.terminate()  # a no-op once the process has been reaped

    def exit_message(self) -> str | None:
        """'status N: first line of stderr' when the command exited on its own, else None."""
        try:
            # The command's output ends just before it does: give it a moment to exit.
            status = self.process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            return None
        if status < 0:  # ended by our signal, after the transport gave up on it
            return None
        pipe = self._pipe(self.process.stderr)
        readable, _, _ = select.select([pipe], [], [], 0)
        stderr = os.read(pipe.fileno(), 4096).decode(errors="replace") if readable else ""
        return f"status {status}: {first_line(stderr) or 'no message'}"

    def dispose(self) -> None:
        self.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout, self.process.stderr):
            self._pipe(pipe).close()


def _open_connection(options: SshOptions, timeout_s: float) -> socket.socket | _ProxyCommand:
    if options.proxy_command is not None:
        try:
            # ssh runs ProxyCommand with a shell ("exec" so the shell does not linger);
            # paramiko alone would split it into words, losing pipes and quotes.
            return _ProxyCommand(shlex.join(["/bin/sh", "-c", f"exec {options.proxy_command}"]))
        except OSError as error:
            raise NodeNotReady(f"unreachable: ProxyCommand could not start: {error.strerror}") from None
    try:
        connection = socket.create_connection((options.hostname, options.port), timeout=timeout_s)
    except socket.gaierror as error:
        raise NodeNotReady(f"unreachable: cannot resolve {options.hostname}: {error.strerror}") from None
    except TimeoutError:
        raise NodeNotReady(f"unreachable: connection timed out after {_seconds(timeout_s)}") from None
    except ConnectionRefusedError:
        raise NodeNotReady("unreachable: connection refused") from None
    except OSError as error:
        if error.errno == errno.EHOSTUNREACH:
            raise NodeNotReady("unreachable: no route to host") from None
        if error.errno == errno.ENETUNREACH:
            raise NodeNotReady("unreachable: network is unreachable") from None
        raise NodeNotReady(f"unreachable: {error.strerror or error}") from None
    # The probe is small messages that each wait for an answer: with Nagle's algorithm,
    # each would also wait for the node's delayed ACK (40 ms on Linux), several per probe.
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return connection


@dataclass(frozen=True)
class Session:
    """A logged-in SSH connection to a node, as Ansible would reach it."""

    client: paramiko.SSHClient
    user: str  # the user ssh_config and the inventory give, which decides on sudo

    def run(self, command: str, timeout_s: float) -> CommandResult:
        """Run one command; a connection that fails or a command past timeout_s raises NodeNotReady."""
        return _run(self.client, command, timeout_s)


@contextlib.contextmanager
def connected(target: Target, timeout_s: float = 10.0) -> Iterator[Session]:
    """Log in to the node with the preflight's rules (ssh_config, keys, host keys checked).

    Raises NodeNotReady with a one-line reason when the node cannot be reached or logged
    into; other tools (curtailment) reuse the connection for their own commands.
    """
    options = ssh_options(target)
    connection = _open_connection(options, timeout_s)
    client = paramiko.SSHClient()
    try:
        _log_in(client, connection, target, options, timeout_s)
        yield Session(client, options.user)
    finally:
        client.close()
        if isinstance(connection, _ProxyCommand):
            connection.dispose()
        else:
            connection.close()


def _log_in(
    client: paramiko.SSHClient,
    connection: socket.socket | _ProxyCommand,
    target: Target,
    options: SshOptions,
    timeout_s: float,
) -> None:
    known = _read_known_host_keys(options.known_hosts_name, options.known_hosts_files)
    policy = _KnownHostsPolicy(target, known)
    client.set_missing_host_key_policy(policy)
    client.set_log_channel(SSH_LOG_CHANNEL)
    key_files = [path for path in options.identity_files if path.is_file() and os.access(path, os.R_OK)]
    try:
        client.connect(
            hostname=options.hostname,
            port=options.port,
            username=options.user,
            # paramiko takes a list of files too (its docs); its stubs say one file only.
            key_filename=[str(path) for path in key_files],  # type: ignore[arg-type]
            allow_agent=options.allow_agent,
            look_for_keys=options.look_for_keys,
            sock=connection,
            # The banner gets timeout_s, and the key exchange after it timeout_s more: the
            # negotiation as a whole must outlast the banner's own limit to report it.
            banner_timeout=timeout_s,
            timeout=2 * timeout_s,
            auth_timeout=timeout_s,
            channel_timeout=timeout_s,
            transport_factory=_transport_preferring(known),
        )
    except NodeNotReady:
        raise
    except (paramiko.SSHException, EOFError, OSError) as error:
        if policy.host_key_accepted:
            raise NodeNotReady(_authentication_failure(error, options, target, timeout_s)) from None
        raise NodeNotReady(_handshake_failure(error, connection, target, timeout_s)) from None


def _handshake_failure(
    error: BaseException, connection: socket.socket | _ProxyCommand, target: Target, timeout_s: float
) -> str:
    if isinstance(connection, _ProxyCommand):
        exit_message = connection.exit_message()
        if exit_message is not None:
            return f"unreachable: ProxyCommand exited with {exit_message}"
    text = str(error)
    if text.startswith("Error reading SSH protocol banner"):
        if isinstance(error.__context__, TimeoutError):
            return f"unreachable: no SSH banner within {_seconds(timeout_s)}"
        return "unreachable: connection closed before the SSH banner"
    if text.startswith("Indecipherable protocol version"):
        return f"unreachable: not an SSH server ({one_line(text)})"
    if text == "No existing session":
        return f"unreachable: SSH key exchange did not finish within {_seconds(timeout_s)}"
    if isinstance(error, (EOFError, OSError)):
        return "unreachable: connection closed during the SSH handshake"
    return f"SSH handshake with {target.address} failed: {one_line(text)}"


def _authentication_failure(
    error: BaseException, options: SshOptions, target: Target, timeout_s: float
) -> str:
    who = f"{options.user}@{target.address}"
    if isinstance(error, paramiko.BadAuthenticationType):
        return f"authentication failed for {who}: the node accepts only {', '.join(error.allowed_types)}"
    if "timeout" in str(error).lower():
        return f"authentication failed for {who}: no answer within {_seconds(timeout_s)}"
    if isinstance(error, (EOFError, OSError)):
        return f"authentication failed for {who}: the node closed the connection"
    detail = f"keys tried: {_keys_tried(options)}"
    if isinstance(error, paramiko.PasswordRequiredException):
        detail += "; a key needs its passphrase, which the preflight can get only from ssh-agent"
    return f"authentication failed for {who} ({detail})"


def _keys_tried(options: SshOptions) -> str:
    """File names of the keys offered, never their contents."""
    offered = [str(path) for path in options.identity_files if path.is_file() and os.access(path, os.R_OK)]
    if options.allow_agent and os.environ.get("SSH_AUTH_SOCK"):
        offered.append("ssh-agent's keys")
    if options.look_for_keys:
        defaults = (Path(f"~/.ssh/id_{kind}").expanduser() for kind in ("rsa", "ecdsa", "ed25519"))
        offered.extend(str(path) for path in defaults if path.is_file())
    missing = [str(path) for path in options.identity_files if str(path) not in offered]
    text = ", ".join(offered) or "none"
    return f"{text}; missing or unreadable: {', '.join(missing)}" if missing else text


# --- On the node -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CommandResult:
    exit_status: int
    stdout: str
    stderr: str


def _run(client: paramiko.SSHClient, command: str, timeout_s: float) -> CommandResult:
    """Run a command on the node, for at most timeout_s from opening its channel to its exit."""
    transport = client.get_transport()
    assert transport is not None, "called after a successful login only"
    try:
        channel = transport.open_session(timeout=timeout_s)
    except (paramiko.SSHException, EOFError, OSError) as error:
        detail = one_line(str(error)) or type(error).__name__
        raise NodeNotReady(f"cannot run `{command}`: {detail}") from None
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        # Closing wakes every wait on the channel, paramiko's unbounded ones included. The
        # connection may be failing on its own meanwhile; the probe reports the timeout.
        with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
            channel.close()

    # paramiko waits without limit for the answer to an exec request and for the exit
    # status; closing the channel at the deadline bounds both, and the reads too.
    watchdog = threading.Timer(timeout_s, expire)
    watchdog.daemon = True
    watchdog.start()
    try:
        channel.exec_command(command)
        stdout = channel.makefile("rb").read()
        stderr = channel.makefile_stderr("rb").read()
        exit_status = channel.recv_exit_status()
    except (paramiko.SSHException, EOFError, OSError) as error:
        if not expired.is_set():
            raise NodeNotReady(f"`{command}` could not run: {one_line(str(error))}") from None
    finally:
        watchdog.cancel()
        watchdog.join()  # a close under way must be done before the caller closes the connection
        channel.close()
    if expired.is_set():
        raise NodeNotReady(f"`{command}` did not finish within {_seconds(timeout_s)}")
    return CommandResult(exit_status, stdout.decode(errors="replace"), stderr.decode(errors="replace"))


def _seconds(seconds: float) -> str:
    return f"{seconds:g} s"
