"""ecohash-gpu-power, the script gpu_power installs, run here against the SIMULATED nvidia-smi.

The script runs in this process (its /etc/ecohash and lock moved to a temporary directory);
the nvidia-smi it calls is the lab's simulator, found first on PATH, with its hardware and
state in the same directory.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import shlex
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from ecohash.lab import nvidia_smi_sim
from ecohash.lab.simhardware import GPU_MODELS, SimulatedGpus

SCRIPT = Path(__file__).parents[2] / "roles" / "gpu_power" / "files" / "ecohash-gpu-power"
PLANNED_W = 450


def load_script() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("ecohash_gpu_power", str(SCRIPT))
    spec = importlib.util.spec_from_loader("ecohash_gpu_power", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@dataclass
class Node:
    script: ModuleType
    etc: Path
    capsys: pytest.CaptureFixture[str]

    @property
    def override_file(self) -> Path:
        return self.etc / "gpu-power-override.json"

    def run(self, *argv: str) -> tuple[int, str, str]:
        code = self.script.main(list(argv))
        captured = self.capsys.readouterr()
        return code, captured.out, captured.err

    def read_back(self, *argv: str) -> dict:
        code, out, err = self.run(*argv)
        assert (code, err) == (0, ""), err
        assert len(out.splitlines()) == 1  # one JSON line
        return json.loads(out)

    def smi(self, *argv: str) -> str:
        return subprocess.run(["nvidia-smi", *argv], capture_output=True, text=True, check=True).stdout

    def limits(self) -> list[str]:
        return self.smi(
            "--query-gpu=power.limit,persistence_mode", "--format=csv,noheader,nounits"
        ).splitlines()


@pytest.fixture
def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Node:
    SimulatedGpus("c01-r01-n01", GPU_MODELS["h100-sxm"], 2).write_into(tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # The simulated driver as root: setting limits needs root, and the tests may run as anyone.
    run_as_root = (
        "import os, runpy, sys; os.geteuid = lambda: 0; "
        f"runpy.run_path({str(nvidia_smi_sim.__file__)!r}, run_name='__main__')"
    )
    wrapper = bin_dir / "nvidia-smi"
    wrapper.write_text(
        "#!/bin/sh\n"
        f"export ECOHASH_SIM_HARDWARE={shlex.quote(str(tmp_path / 'etc/ecohash-sim/gpus.json'))}\n"
        f"export ECOHASH_SIM_STATE={shlex.quote(str(tmp_path / 'var/lib/sim/state.json'))}\n"
        f'exec {shlex.quote(sys.executable)} -c {shlex.quote(run_as_root)} "$@"\n'
    )
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    etc = tmp_path / "etc/ecohash"
    etc.mkdir(parents=True)
    (etc / "gpu-power.env").write_text(f"# Set by the ecohash budget\nECOHASH_GPU_CAP_W={PLANNED_W}\n")
    script = load_script()
    monkeypatch.setattr(script, "ETC", etc)
    monkeypatch.setattr(script, "LOCK_FILE", tmp_path / "ecohash-gpu-power.lock")
    return Node(script, etc, capsys)


def test_without_arguments_it_applies_the_planned_cap_persistence_first(node: Node) -> None:
    assert node.limits() == ["700.00, Disabled", "700.00, Disabled"]
    assert node.run() == (0, f"ecohash-gpu-power: applied {PLANNED_W} W (the planned cap)\n", "")
    assert node.limits() == ["450.00, Enabled", "450.00, Enabled"]
    assert node.run() == (0, "", "")  # the timer's runs leave no trace while nothing differs


def test_curtail_applies_the_cap_keeps_the_override_and_reads_back(node: Node) -> None:
    before = time.time()
    back = node.read_back("curtail", "--cap", "300", "--until", "0", "--event", "ev-1")

    override = {"event": "ev-1", "cap_w": 300, "until": 0, "set_at": back["override"]["set_at"]}
    assert back["override"] == override and before - 1 <= override["set_at"] <= time.time()
    assert (back["planned_cap_w"], back["effective_cap_w"]) == (PLANNED_W, 300)
    assert before <= back["node_time"] <= time.time()
    assert [(g["index"], g["limit_w"], g["enforced_w"], g["draw_w"], g["persistence"]) for g in back["gpus"]] == [
        (0, 300.0, 300.0, 300.0, True),
        (1, 300.0, 300.0, 300.0, True),
    ]  # the simulated GPUs work flat out, so the cap is what they draw
    assert all(isinstance(g["energy_mj"], int) for g in back["gpus"])
    assert json.loads(node.override_file.read_text()) == override
    assert node.read_back("read")["override"] == override


def test_the_override_survives_a_hand_reset_and_the_boot_run(node: Node) -> None:
    node.run("curtail", "--cap", "300", "--until", "0", "--event", "ev-1")
    node.smi("-pl", "700")
    node.smi("-pm", "0")
    assert node.run() == (0, "ecohash-gpu-power: applied 300 W (event ev-1's override)\n", "")
    assert node.limits() == ["300.00, Enabled", "300.00, Enabled"]


def test_the_override_file_is_root_0644_and_written_by_rename(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    node.run("curtail", "--cap", "300", "--until", "0", "--event", "ev-1")
    assert stat.S_IMODE(node.override_file.stat().st_mode) == 0o644
    written = node.override_file.read_text()

    def interrupted(source: str, destination: str) -> None:
        raise OSError(28, "No space left on device", destination)

    monkeypatch.setattr(node.script.os, "replace", interrupted)
    code, out, err = node.run("curtail", "--cap", "250", "--until", "0", "--event", "ev-2")
    assert (code, out) == (1, "")
    assert err == f"ecohash-gpu-power: {node.override_file}: No space left on device\n"
    assert node.override_file.read_text() == written  # the old override whole, not half a new one
    assert sorted(path.name for path in node.etc.iterdir()) == ["gpu-power-override.json", "gpu-power.env"]
    assert node.limits() == ["300.00, Enabled", "300.00, Enabled"]  # nothing applied after it


def test_release_takes_a_ramp_step_then_ends_the_event(node: Node) -> None:
    node.run("curtail", "--cap", "300", "--until", "0", "--event", "ev-1")
    step = node.read_back("release", "--cap", "400")
    assert step["override"]["cap_w"] == 400 and step["override"]["event"] == "ev-1"
    assert json.loads(node.override_file.read_text())["cap_w"] == 400
    assert [g["limit_w"] for g in step["gpus"]] == [400.0, 400.0]

    done = node.read_back("release")
    assert (done["override"], done["effective_cap_w"]) == (None, PLANNED_W)
    assert not node.override_file.exists()
    assert [g["limit_w"] for g in done["gpus"]] == [450.0, 450.0]
    # An event already over on this node has no step left: the planned cap, and no error.
    assert node.read_back("release", "--cap", "400")["effective_cap_w"] == PLANNED_W
    assert node.limits() == ["450.00, Enabled", "450.00, Enabled"]


def test_an_expired_override_is_removed_and_the_planned_cap_comes_back(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    until = int(time.time()) + 60
    node.run("curtail", "--cap", "300", "--until", str(until), "--event", "ev-1")
    monkeypatch.setattr(node.script.time, "time", lambda: until + 1.0)

    assert node.read_back("read")["override"] is None  # not in force any more, though still there
    code, out, _ = node.run()
    assert (code, out.splitlines()) == (0, [
        f"ecohash-gpu-power: event ev-1's override expired at {until}: removed, back to the "
        f"planned cap {PLANNED_W} W",
        f"ecohash-gpu-power: applied {PLANNED_W} W (the planned cap)",
    ])
    assert not node.override_file.exists()
    assert node.limits() == ["450.00, Enabled", "450.00, Enabled"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["curtail", "--cap", "300.5", "--until", "0", "--event", "e"], "argument --cap: '300.5' is not a whole number"),
        (["curtail", "--cap", "300", "--until", "-1", "--event", "e"], "argument --until: '-1' is not a whole number"),
        (["curtail", "--cap", "300", "--until", "0", "--event", "Ev1"], "argument --event: 'Ev1' is not an event id"),
        (["curtail", "--cap", "300", "--until", "0", "--event", "e;reboot"], "'e;reboot' is not an event id"),
        (["curtail", "--cap", "300", "--until", "0", "--event", "e" * 65], "is not an event id ([a-z0-9-], 1 to 64)"),
        (["curtail", "--cap", "300", "--until", "0"], "the following arguments are required: --event"),
        (["curtail", "--cap", "150", "--until", "0", "--event", "e"], "--cap 150: outside the GPUs' power limit range 200-700 W"),
        (["curtail", "--cap", "701", "--until", "0", "--event", "e"], "--cap 701: outside the GPUs' power limit range 200-700 W"),
        (["curtail", "--cap", "500", "--until", "0", "--event", "e"], "--cap 500: above the planned cap 450 W"),
        (["curtail", "--cap", "300", "--until", "1000", "--event", "e"], "--until 1000: already past"),
        (["release", "--cap", "x"], "argument --cap: 'x' is not a whole number"),
        (["boost"], "argument mode: invalid choice: 'boost'"),
    ],
)
def test_bad_arguments_are_one_line_exit_2_and_change_nothing(
    node: Node, argv: list[str], message: str
) -> None:
    code, out, err = node.run(*argv)
    assert (code, out) == (2, "")
    assert err.startswith("ecohash-gpu-power: ") and message in err and err.count("\n") == 1, err
    assert not node.override_file.exists()
    assert node.limits() == ["700.00, Disabled", "700.00, Disabled"]


def test_a_damaged_override_is_named_and_the_planned_cap_applied(node: Node) -> None:
    node.override_file.write_text('{"event": "ev-1",\n "cap_w": }\n')
    code, _, err = node.run()
    assert (code, err) == (2, f"ecohash-gpu-power: {node.override_file}:2: not JSON (Expecting value)\n")
    assert node.limits() == ["450.00, Enabled", "450.00, Enabled"]
    node.override_file.write_text('{"event": "ev-1", "cap_w": "300; reboot", "until": 0, "set_at": 0}\n')
    code, _, err = node.run("read")
    assert (code, err) == (2, f"ecohash-gpu-power: {node.override_file}: not an override: expected "
                              "{event, cap_w, until, set_at}\n")


def test_a_bad_planned_cap_is_named_at_its_line(node: Node) -> None:
    (node.etc / "gpu-power.env").write_text("# budget\nECOHASH_GPU_CAP_W=450 W\n")
    code, _, err = node.run()
    assert (code, err) == (2, f"ecohash-gpu-power: {node.etc / 'gpu-power.env'}:2: ECOHASH_GPU_CAP_W "
                              "must be a whole number of watts\n")
    assert node.limits() == ["700.00, Disabled", "700.00, Disabled"]
