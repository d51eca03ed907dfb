"""The executor's stream as untrusted input (ecohash.ansible.artifacts): crafted streams fed
through the real process side, ansible-runner's Processor as ecohash runs it."""

from __future__ import annotations

import base64
import io
import json
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ecohash.ansible import artifacts
from ecohash.ansible.artifacts import GuardedProcessor, UntrustedStreamError

Member = tuple[zipfile.ZipInfo, bytes]


def member(name: str, data: bytes = b"x", kind: int = stat.S_IFREG, mode: int = 0o644) -> Member:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # unix: external_attr's high half is st_mode
    info.external_attr = (kind | mode) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info, data


def symlink(name: str, target: str) -> Member:
    return member(name, target.encode(), kind=stat.S_IFLNK, mode=0o777)


def stream(members: list[Member], events: list[dict[str, Any]] | None = None,
           announced: int | None = None) -> bytes:
    """What a worker sends: its status, events, the artifact zip (base64), then eof."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for info, data in members:
            archive.writestr(info, data)
    payload = buffer.getvalue()
    lines = [{"status": "starting"}, *(events or []), {"status": "successful"},
             {"zipfile": len(payload) if announced is None else announced}]
    head = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    return head + base64.b64encode(payload) + json.dumps({"eof": True}).encode() + b"\n"


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(path.relative_to(directory)): path.read_bytes() if path.is_file() else b""
            for path in sorted(directory.rglob("*"))}


@pytest.fixture
def places(tmp_path: Path) -> dict[str, Path]:
    """A run directory, and beside it a directory the controller keeps (its root's keys)."""
    outside = tmp_path / "controller" / ".ssh"
    outside.mkdir(parents=True)
    (outside / "authorized_keys").write_text("ssh-ed25519 AAAA operator\n")
    run = tmp_path / "run"
    run.mkdir()
    return {"run": run, "outside": tmp_path / "controller", "artifacts": run / "artifacts" / "ident1"}


def process(data: bytes, run: Path) -> GuardedProcessor:
    processor = GuardedProcessor(_input=io.BytesIO(data), private_data_dir=str(run), ident="ident1", quiet=True)
    processor.run()
    return processor


def test_a_workers_stream_unpacks_into_the_runs_artifacts(places):
    run = places["run"]
    process(stream([member("rc", b"0"), member("job_events/", b"", kind=stat.S_IFDIR, mode=0o755),
                    member("job_events/1-abc.json", b"{}"), member("fact_cache/n1", b"{}")]), run)
    unpacked = places["artifacts"]
    assert (unpacked / "rc").read_text() == "0" and (unpacked / "fact_cache" / "n1").read_text() == "{}"
    # Files private to the controller's user, whatever mode the stream asked for.
    assert all(path.stat().st_mode & 0o077 == 0 for path in unpacked.rglob("*"))


CRAFTED: list[tuple[str, Callable[[Path], list[Member]], str]] = [
    ("symlink then write-through",
     lambda outside: [symlink("l", str(outside / ".ssh")), member("l/authorized_keys", b"ssh-ed25519 ATTACKER\n")],
     "artifact member 'l' is a symbolic link"),
    ("relative symlink", lambda outside: [symlink("job_events/x", "../../../../controller/.ssh/authorized_keys")],
     "artifact member 'job_events/x' is a symbolic link"),
    ("..", lambda outside: [member("rc", b"0"), member("../../controller/.ssh/authorized_keys", b"ATTACKER\n")],
     "artifact member '../../controller/.ssh/authorized_keys' leaves the run's directory ('..')"),
    ("absolute path", lambda outside: [member(f"{outside}/.ssh/authorized_keys", b"ATTACKER\n")],
     "is an absolute path"),
    ("a device", lambda outside: [member("dev", b"", kind=stat.S_IFCHR)],
     "artifact member 'dev' is not a regular file or a directory"),
    ("a name twice", lambda outside: [member("rc", b"0"), member("rc", b"1")], "artifact member 'rc' is named twice"),
    ("under a file", lambda outside: [member("rc", b"0"), member("rc/x", b"1")],
     "artifact member 'rc/x' lies under the file 'rc'"),
]


@pytest.mark.filterwarnings("ignore:Duplicate name")  # zipfile's, writing the crafted zip
@pytest.mark.parametrize(("members", "message"), [(make, message) for _, make, message in CRAFTED],
                         ids=[case for case, _, _ in CRAFTED])
def test_a_crafted_artifact_stream_is_refused_naming_the_member_and_nothing_is_written(places, members, message):
    before = snapshot(places["outside"])
    with pytest.raises(UntrustedStreamError) as raised:
        process(stream(members(places["outside"])), places["run"])
    assert message in str(raised.value) and str(raised.value).endswith("nothing of it was written"), raised.value
    assert "\n" not in str(raised.value)
    assert snapshot(places["outside"]) == before
    # Nothing of the zip either: the run's artifacts hold only what the process side makes itself.
    assert snapshot(places["artifacts"]) == {"job_events": b""}


def test_too_many_members_are_refused_before_any_is_written(places, monkeypatch):
    monkeypatch.setattr(artifacts, "MAX_MEMBERS", 50)
    with pytest.raises(UntrustedStreamError, match="its artifact zip has 51 members, over the limit of 50"):
        process(stream([member(f"job_events/{n}-a.json") for n in range(51)]), places["run"])
    assert snapshot(places["artifacts"]) == {"job_events": b""}


def test_a_zip_bomb_is_refused_before_it_is_unpacked(places, monkeypatch):
    monkeypatch.setattr(artifacts, "MAX_UNPACKED_BYTES", 1 << 20)
    bomb = stream([member("rc", b"0"), member("stdout", bytes(16 << 20))])
    assert len(bomb) < 100_000  # 16 MiB of zeros, deflated
    with pytest.raises(UntrustedStreamError, match="artifact member 'stdout' takes what the zip unpacks over "
                                                   "the limit of 1048576 bytes"):
        process(bomb, places["run"])
    assert snapshot(places["artifacts"]) == {"job_events": b""}


def test_a_zip_announced_over_the_limit_is_never_read(places, monkeypatch):
    monkeypatch.setattr(artifacts, "MAX_ZIP_BYTES", 1000)
    with pytest.raises(UntrustedStreamError, match="its artifact zip announces 5000 bytes, over the limit"):
        process(stream([member("rc", b"0")], announced=5000), places["run"])


def test_an_event_named_as_a_path_is_refused_and_written_nowhere(places):
    event = {"event": "runner_on_ok", "counter": "../../../controller/.ssh/authorized_keys", "uuid": "x",
             "stdout": "", "event_data": {}}
    before = snapshot(places["outside"])
    with pytest.raises(UntrustedStreamError, match="is not named as ansible-runner names events"):
        process(stream([member("rc", b"0")], events=[event]), places["run"])
    assert snapshot(places["outside"]) == before
    assert snapshot(places["artifacts"]) == {"job_events": b""}


def test_a_member_never_goes_through_a_link_already_in_the_run_directory(places):
    # Defence in depth: the checks refuse links in the zip; the writer refuses them on disk too.
    unpacked = places["artifacts"]
    unpacked.mkdir(parents=True)
    (unpacked / "stdout").symlink_to(places["outside"] / ".ssh" / "authorized_keys")
    before = snapshot(places["outside"])
    with pytest.raises(UntrustedStreamError, match="would overwrite .*stdout, which is not a file"):
        process(stream([member("stdout", b"ATTACKER\n")]), places["run"])
    assert snapshot(places["outside"]) == before
