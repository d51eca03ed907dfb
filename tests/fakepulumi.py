"""A stand-in `pulumi` executable that records what it was asked and with what environment,
and fixtures that keep the user's own Pulumi settings out of tests.

It answers as pulumi 3.205 would: above that version the SDK reads engine events over
gRPC, at or below it from a file the stand-in can write.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ecohash.stack.automation import BACKEND_ENV

FAKE_PULUMI = '''
import json
import os
import sys
from pathlib import Path

home = Path(__file__).resolve().parent
args = [arg for arg in sys.argv[1:] if arg != "--non-interactive"]
with (home / "calls.jsonl").open("a") as log:
    log.write(json.dumps({"argv": sys.argv[1:], "env": dict(os.environ)}) + "\\n")
stacks_file = home / "stacks.json"
stacks = json.loads(stacks_file.read_text()) if stacks_file.exists() else {}
failure_file = home / "failure.json"


def option(name):
    return args[args.index(name) + 1] if name in args else None


def finish(code=0, error=None):
    stacks_file.write_text(json.dumps(stacks))
    if error:
        print(error, file=sys.stderr)
    sys.exit(code)


if args == ["version"]:
    print("v3.205.0")
elif args[:2] == ["stack", "select"]:
    if option("--stack") not in stacks:
        finish(255, f"error: no stack named '{option('--stack')}' found")
elif args[:2] == ["stack", "init"]:
    stacks[args[2]] = {"secrets_provider": option("--secrets-provider"), "config": {}, "updates": 0}
elif args[:2] == ["config", "set"]:
    stacks[option("--stack")]["config"][args[2]] = args[-1]
elif args[0] in ("preview", "up"):
    if failure_file.exists():
        failure = json.loads(failure_file.read_text())
        print(failure["stdout"])
        finish(255, failure["stderr"])
    print(f"{args[0]} of {option('--stack')} (fake)")
    if args[0] == "preview":
        with open(option("--event-log"), "a") as events:
            summary = {"resourceChanges": {"same": 10, "create": 3}}
            events.write(json.dumps({"sequence": 1, "timestamp": 0, "summaryEvent": summary}) + "\\n")
            events.write(json.dumps({"sequence": 2, "timestamp": 0, "cancelEvent": {}}) + "\\n")
    else:
        stacks[option("--stack")]["updates"] += 1
elif args[:3] == ["stack", "output", "--json"]:
    token = "fake-token-value" if "--show-secrets" in args else "[secret]"
    print(json.dumps({"endpoint": "http://10.20.1.11:8000", "token": token}))
elif args[:3] == ["stack", "history", "--json"]:
    print(json.dumps([{"kind": "update", "startTime": "2025-01-01T00:00:00.000Z", "message": "",
                       "environment": {}, "config": {}, "result": "succeeded",
                       "resourceChanges": {"update": 1, "same": 12}}]))
else:
    finish(2, "fake pulumi: unexpected command: " + " ".join(args))
finish()
'''


@dataclass(frozen=True)
class FakePulumi:
    """A fake `pulumi` first on PATH, and what it was asked."""

    directory: Path

    @property
    def executable(self) -> Path:
        return self.directory / "pulumi"

    def calls(self) -> list[dict[str, Any]]:
        log = self.directory / "calls.jsonl"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def commands(self) -> list[list[str]]:
        """Each call's argv up to its first option, e.g. ["stack", "select"]."""
        words = []
        for call in self.calls():
            argv = [arg for arg in call["argv"] if arg != "--non-interactive"]
            words.append(argv[:next((i for i, arg in enumerate(argv) if arg.startswith("-")), len(argv))])
        return words

    def stacks(self) -> dict[str, Any]:
        return json.loads((self.directory / "stacks.json").read_text())

    def fail(self, stdout: str, stderr: str) -> None:
        """Make the next preview and up exit 255 with this output."""
        (self.directory / "failure.json").write_text(json.dumps({"stdout": stdout, "stderr": stderr}))


def install_fake_pulumi(directory: Path, monkeypatch: pytest.MonkeyPatch) -> FakePulumi:
    fake = FakePulumi(directory / "fake-pulumi")
    fake.directory.mkdir()
    fake.executable.write_text(f"#!{sys.executable}\n{FAKE_PULUMI}")
    fake.executable.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.directory}{os.pathsep}{os.environ.get('PATH', '')}")
    return fake


def hide_pulumi(directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A PATH with no pulumi on it (and nothing else either)."""
    empty = directory / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh state directory, and none of the user's passphrase or backend settings."""
    monkeypatch.setenv("ECOHASH_STATE_DIR", str(tmp_path / "state"))
    for name in ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE", "PULUMI_BACKEND_URL",
                 BACKEND_ENV):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "state"


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakePulumi:
    return install_fake_pulumi(tmp_path, monkeypatch)
