"""What a site's executor streams back is untrusted input, checked before anything is written.

The executor is often a GPU node that also runs tenants' workloads: whoever holds it can
send any stream. ansible-runner's process side (2.4) trusts the stream: `unstream_dir`
creates the symbolic links the artifact zip names and extracts later members through
them (`l -> /root/.ssh`, then `l/authorized_keys`), and an event's `counter` and `uuid`
become a file name under job_events/ unchecked. `GuardedProcessor` is ansible-runner's
Processor with those two inputs checked first: a zip is spooled inside the run's own
directory, every member is checked (a regular file or a directory only: no symbolic
link, no device, no pipe; zip has no hard-link member type, and any type other than the
two is refused), no absolute path, no `..`, no name twice, and a size and count limit
on what it would unpack. Only a zip that passes every check is extracted, by ecohash
itself, never through an existing link (O_NOFOLLOW, each parent a real directory), each
file 0600. A stream that breaks a rule raises `UntrustedStreamError` naming the member.

The kubeconfig the role fetched comes back in that zip and goes on to the secrets
directory: it is opened without following a link, bounded in size and must be a
kubeconfig before it is kept (`read_kubeconfig`).

Least privilege, decided: the process side runs inside ecohash's own process, as the
controller's user, and is not dropped to another user. Another uid would have to exist
on every controller, and the run directory, state and secrets would then cross users;
instead what the stream can cause is bounded by construction: regular files under the
run's artifact directory, nothing else.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import IO, Any

import yaml
from ansible_runner.streaming import Processor
from ansible_runner.utils.base64io import Base64IO

from ecohash.errors import EcohashError
from ecohash.untrusted_files import NotRegularFileError, open_regular

# Far above a real run's artifacts (its events, stdout, rc, status, fact cache; 1,000
# nodes with 200 tasks each stay under 600,000 members and a few GiB), far below what
# fills a controller's disk or inode table.
MAX_ZIP_BYTES = 2 << 30  # as the stream announces it, compressed
MAX_UNPACKED_BYTES = 8 << 30  # every member, as unpacked
MAX_MEMBERS = 1_000_000
MAX_KUBECONFIG_BYTES = 1 << 20
CHUNK = 1 << 20
# ansible-runner names each event's file `<counter>-<uuid>.json` (uuid4s): a name, never a path.
_EVENT_UUID = re.compile(r"[0-9A-Za-z_-]{1,64}")
_KUBECONFIG_LISTS = ("clusters", "users", "contexts")


class UntrustedStreamError(EcohashError):
    """What the executor sent back breaks a rule; nothing of it was written."""


class GuardedProcessor(Processor):  # type: ignore[misc]  # ansible-runner has no type hints
    """ansible-runner's process side, with the artifact zip and event names checked first."""

    def event_callback(self, event_data: dict[str, Any]) -> None:
        counter, uuid = event_data.get("counter"), event_data.get("uuid")
        named = isinstance(counter, int) and not isinstance(counter, bool) and counter >= 1 \
            and isinstance(uuid, str) and _EVENT_UUID.fullmatch(uuid) is not None
        if (counter or uuid) and not named:  # ansible-runner skips an event with neither
            raise UntrustedStreamError(f"event {_shown(counter)}-{_shown(uuid)} is not named as "
                                       "ansible-runner names events (a number, then a uuid: letters, "
                                       "digits, - and _)")
        super().event_callback(event_data)

    def artifacts_callback(self, artifacts_data: dict[str, Any]) -> None:
        unpack_artifacts(self._input, artifacts_data.get("zipfile"), Path(self.artifact_dir))
        if self.artifacts_handler is not None:
            self.artifacts_handler(self.artifact_dir)


def unpack_artifacts(stream: IO[bytes], length: object, target: Path) -> None:
    """Read the zip of `length` bytes (base64 on `stream`) and unpack it into `target`,
    only once every member is known to land there as a plain file or directory."""
    if isinstance(length, bool) or not isinstance(length, int) or not 0 <= length <= MAX_ZIP_BYTES:
        raise UntrustedStreamError(f"its artifact zip announces {_shown(length)} bytes, over the "
                                   f"limit of {MAX_ZIP_BYTES} (or not a size); nothing of it was written")
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Spooled inside the run's directory, unnamed: nothing lands anywhere else.
    with tempfile.TemporaryFile(dir=target) as spool:
        _spool(stream, length, spool)
        try:
            with zipfile.ZipFile(spool) as archive:
                members = check_members(archive)
                bad = archive.testzip()  # a member whose data does not match its header
                if bad is not None:
                    raise UntrustedStreamError(f"artifact member {_shown(bad)} is damaged (CRC); "
                                               "nothing of it was written")
                for info in members:
                    _extract(archive, info, target)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as error:
            raise UntrustedStreamError(f"its artifact zip is not a zip ansible-runner sends: "
                                       f"{_shown(str(error))}") from None


def _spool(stream: IO[bytes], length: int, spool: IO[bytes]) -> None:
    source = Base64IO(stream)
    remaining = length
    while remaining:
        data = source.read(min(CHUNK, remaining))
        if not data:
            raise UntrustedStreamError(f"its artifact zip ended {remaining} bytes short of the {length} "
                                       "it announced")
        spool.write(data)
        remaining -= len(data)
    spool.seek(0)


def check_members(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """Every member of `archive`, once each is known to be safe to unpack; the first that
    is not raises, naming it."""
    members = archive.infolist()
    if len(members) > MAX_MEMBERS:
        raise UntrustedStreamError(f"its artifact zip has {len(members)} members, over the limit of "
                                   f"{MAX_MEMBERS}; nothing of it was written")
    seen: dict[PurePosixPath, bool] = {}  # path -> is a directory
    unpacked = 0
    for info in members:
        why = _refusal(info, seen)
        if why is not None:
            raise UntrustedStreamError(f"artifact member {_shown(info.filename)} {why}; "
                                       "nothing of it was written")
        unpacked += info.file_size
        if unpacked > MAX_UNPACKED_BYTES:
            raise UntrustedStreamError(f"artifact member {_shown(info.filename)} takes what the zip unpacks "
                                       f"over the limit of {MAX_UNPACKED_BYTES} bytes; "
                                       "nothing of it was written")
    return members


def _refusal(info: zipfile.ZipInfo, seen: dict[PurePosixPath, bool]) -> str | None:
    name = info.filename
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if "\x00" in name or "\\" in name or not name.strip("/"):
        return "has a name no run writes"
    if name.startswith("/"):
        return "is an absolute path"
    path = PurePosixPath(name)
    if ".." in path.parts:
        return "leaves the run's directory ('..')"
    if kind == stat.S_IFLNK:
        return "is a symbolic link"
    is_directory = info.is_dir() or kind == stat.S_IFDIR
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR) or (kind == stat.S_IFDIR and not info.is_dir()):
        return "is not a regular file or a directory"
    if info.flag_bits & 0x1:
        return "is encrypted"
    if path in seen:
        return "is named twice"
    for parent in path.parents:
        if seen.get(parent) is False:
            return f"lies under the file {str(parent)!r}"
    seen[path] = is_directory
    return None


def _extract(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path) -> None:
    path = PurePosixPath(info.filename)
    parts = path.parts if info.is_dir() else path.parts[:-1]
    directory = target
    for part in parts:
        directory = directory / part
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            # Never through a link that was there before: a directory or nothing.
            if not stat.S_ISDIR(os.lstat(directory).st_mode):
                raise UntrustedStreamError(f"artifact member {_shown(info.filename)} would go through "
                                           f"{directory}, which is not a directory") from None
    if info.is_dir():
        return
    destination = directory / path.name
    try:
        descriptor = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.EISDIR):
            raise UntrustedStreamError(f"artifact member {_shown(info.filename)} would overwrite "
                                       f"{destination}, which is not a file") from None
        raise
    with os.fdopen(descriptor, "wb") as out, archive.open(info) as source:
        os.fchmod(out.fileno(), 0o600)
        written = 0
        while data := source.read(CHUNK):
            written += len(data)
            if written > info.file_size:  # zipfile stops at the header's size; never trust that alone
                raise UntrustedStreamError(f"artifact member {_shown(info.filename)} holds more than "
                                           "it declares")
            out.write(data)


def read_kubeconfig(path: Path) -> str | None:
    """The kubeconfig at `path` (None when there is none), read without following a link
    and only if it is a bounded, well-formed kubeconfig."""
    try:
        handle = open_regular(path)
    except FileNotFoundError:
        return None
    except NotRegularFileError as error:
        what = "a symbolic link" if error.errno == errno.ELOOP else "not a regular file"
        raise UntrustedStreamError(f"the kubeconfig it sent is {what}; not kept") from None
    except OSError as error:
        raise UntrustedStreamError(f"cannot read the kubeconfig it sent: {error.strerror}") from None
    with handle:
        data = handle.read(MAX_KUBECONFIG_BYTES + 1)
    if len(data) > MAX_KUBECONFIG_BYTES:
        raise UntrustedStreamError(f"the kubeconfig it sent is over {MAX_KUBECONFIG_BYTES} bytes; not kept")
    try:
        text = data.decode("utf-8")
        document = yaml.safe_load(text)
    except (UnicodeDecodeError, yaml.YAMLError):
        raise UntrustedStreamError("the kubeconfig it sent is not YAML; not kept") from None
    if not (isinstance(document, dict) and document.get("apiVersion") == "v1"
            and document.get("kind") == "Config"
            and all(isinstance(document.get(key), list) for key in _KUBECONFIG_LISTS)):
        raise UntrustedStreamError("the kubeconfig it sent is not a kubeconfig (apiVersion v1, kind Config, "
                                   "lists of clusters, users and contexts); not kept")
    return text


def _shown(value: object) -> str:
    # The executor's own words, one line and bounded: repr escapes newlines.
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."
