"""A small SSH server for tests: public-key login and canned replies to commands.

It listens on 127.0.0.1 at a port of the kernel's choosing, lets one client key in as
any of a few users, and answers each exec request from a dict of command -> Reply, so a
test can make a node whose `sudo` wants a password or whose Python is too old. Each
connection gets a thread; leaving the `with` block closes them all and waits for them.
"""

from __future__ import annotations

import io
import queue
import socket
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import paramiko
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

# How often idle threads look whether the server is shutting down.
POLL_S = 0.05


@dataclass(frozen=True)
class Reply:
    """What the server answers to one command; `hang` never answers (until shutdown)."""

    exit_status: int
    stdout: str = ""
    stderr: str = ""
    hang: bool = False


def new_ed25519_key(path: Path | None = None) -> paramiko.Ed25519Key:
    """A fresh Ed25519 key, written in OpenSSH's format to `path` (mode 0600) if given.

    paramiko cannot generate Ed25519 keys; cryptography can, and paramiko reads them.
    """
    text = ed25519.Ed25519PrivateKey.generate().private_bytes(
        Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()
    ).decode()
    if path is not None:
        path.write_text(text)
        path.chmod(0o600)
    return paramiko.Ed25519Key(file_obj=io.StringIO(text))


def known_hosts_line(names: str, key: paramiko.PKey) -> str:
    return f"{names} {key.get_name()} {key.get_base64()}\n"


class SshServer:
    """The server; `port` is known once the `with` block is entered."""

    def __init__(
        self,
        host_keys: Sequence[paramiko.PKey],
        authorized_key: paramiko.PKey,
        replies: dict[str, Reply],
        users: Sequence[str] = ("root",),
    ):
        self.host_keys = list(host_keys)
        self.authorized_key = authorized_key
        self.replies = replies
        self.users = tuple(users)
        self.commands_run: list[str] = []
        self.port = 0
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._transports: list[paramiko.Transport] = []
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None

    def __enter__(self) -> SshServer:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(POLL_S)
        self.port = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept_connections, daemon=True)
        self._acceptor.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        # Under the lock, so that a connection either registered its transport before (and
        # it is closed here) or sees the server stopping and does not start one.
        with self._lock:
            self._stopping.set()
            transports = list(self._transports)
        for transport in transports:
            transport.close()
        assert self._acceptor is not None and self._listener is not None
        self._acceptor.join(timeout=5)
        self._listener.close()
        for thread in [self._acceptor, *self._threads]:
            thread.join(timeout=5)
            assert not thread.is_alive(), f"test SSH server thread {thread.name} did not stop"

    def _accept_connections(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            # Replies are a few small writes; Nagle's algorithm would hold each behind the
            # client's delayed ACK, 40 ms a command.
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            thread = threading.Thread(target=self._serve, args=(connection,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, connection: socket.socket) -> None:
        transport = paramiko.Transport(connection)
        with self._lock:
            if self._stopping.is_set():
                connection.close()
                return
            self._transports.append(transport)
        for key in self.host_keys:
            transport.add_server_key(key)
        requests: queue.Queue[tuple[paramiko.Channel, str]] = queue.Queue()
        try:
            transport.start_server(server=_Interface(self, requests))
        except (paramiko.SSHException, EOFError, OSError):
            transport.close()
            return  # the client gave up during the handshake, as clients under test do
        while transport.is_active() and not self._stopping.is_set():
            try:
                channel, command = requests.get(timeout=POLL_S)
            except queue.Empty:
                continue
            self._answer(channel, command)
        transport.close()

    def _answer(self, channel: paramiko.Channel, command: str) -> None:
        self.commands_run.append(command)
        program = command.split()[0] if command.split() else command
        reply = self.replies.get(command, Reply(127, stderr=f"sh: 1: {program}: not found\n"))
        if reply.hang:
            self._stopping.wait()
            return
        channel.sendall(reply.stdout.encode())
        channel.sendall_stderr(reply.stderr.encode())
        channel.send_exit_status(reply.exit_status)
        # EOF, not close: the exec request's answer may still be on its way to the client,
        # and a channel closed before it arrives reads there as a failed exec. The client
        # closes the channel once it has read everything.
        channel.shutdown_write()


class _Interface(paramiko.ServerInterface):
    def __init__(self, server: SshServer, requests: queue.Queue[tuple[paramiko.Channel, str]]):
        self.server = server
        self.requests = requests

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        if username in self.server.users and key.asbytes() == self.server.authorized_key.asbytes():
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        # Answered from the connection's thread: this one is the transport's, which must
        # stay free to send and receive while the answer goes out.
        self.requests.put((channel, command.decode()))
        return True


@contextmanager
def silent_listener() -> Iterator[int]:
    """A port that accepts TCP connections (the kernel does, from the backlog) and says nothing."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield listener.getsockname()[1]


def closed_port() -> int:
    """A port nothing listens on: bound for a moment to get it, then closed."""
    with socket.create_server(("127.0.0.1", 0)) as probe_socket:
        return probe_socket.getsockname()[1]
