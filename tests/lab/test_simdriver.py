"""The simulated driver without a lab: nvidia-smi's answers and the package's metadata."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ecohash.lab import labstandard, nvidia_smi_sim, simdriver, simtoolkit
from ecohash.lab.simhardware import GPU_MODELS, SimulatedGpus
from ecohash.standard import load_standard


@pytest.fixture
def h100_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    SimulatedGpus("c01-r01-n01", GPU_MODELS["h100-sxm"], 2).write_into(tmp_path)
    monkeypatch.setattr(nvidia_smi_sim, "HARDWARE_FILE", tmp_path / "etc/ecohash-sim/gpus.json")
    monkeypatch.setattr(nvidia_smi_sim, "STATE_FILE", tmp_path / "var/lib/sim/state.json")
    monkeypatch.setattr("os.geteuid", lambda: 0)
    return tmp_path


def smi(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = nvidia_smi_sim.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_query_matches_real_nvidia_smi_csv(
    h100_host: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = smi(
        capsys, "--query-gpu=index,name,power.limit,persistence_mode,count", "--format=csv"
    )
    assert code == 0
    assert out.splitlines() == [
        "index, name, power.limit [W], persistence_mode, count",
        "0, NVIDIA H100 80GB HBM3, 700.00 W, Disabled, 2",
        "1, NVIDIA H100 80GB HBM3, 700.00 W, Disabled, 2",
    ]


def test_noheader_nounits_drop_the_header_and_the_units(
    h100_host: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = smi(
        capsys, "--query-gpu=power.min_limit,power.max_limit", "--format=csv,noheader,nounits"
    )
    assert (code, out) == (0, "200.00, 700.00\n200.00, 700.00\n")


def test_power_limit_outside_the_model_range_is_refused_like_the_real_tool(
    h100_host: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = smi(capsys, "-pl", "150")
    assert code == 2
    assert err == (
        "Provided power limit 150.00 W is not a valid power limit which should be between "
        "200.00 W and 700.00 W for GPU 00000000:18:00.0\n"
        "Terminating early due to previous errors.\n"
    )


def test_power_limit_and_persistence_persist_across_invocations(
    h100_host: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert smi(capsys, "-i", "1", "-pl", "450")[1] == (
        "Power limit for GPU 00000000:38:00.0 was set to 450.00 W from 700.00 W.\nAll done.\n"
    )
    assert smi(capsys, "-pm", "1", "-i", "0")[0] == 0
    _, out, _ = smi(capsys, "--query-gpu=power.limit,persistence_mode", "--format=csv,noheader")
    assert out.splitlines() == ["700.00 W, Enabled", "450.00 W, Disabled"]


def test_setting_a_limit_needs_root(
    h100_host: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    code, _, err = smi(capsys, "-pl", "300")
    assert code == 4
    assert "Insufficient Permissions" in err


def test_unknown_field_is_an_invalid_argument(
    h100_host: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = smi(capsys, "--query-gpu=index,bogus", "--format=csv")
    assert code == 2
    assert err == 'Field "bogus" is not a valid field to query.\n'


def test_list_and_full_query_say_what_they_are(
    h100_host: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, listing, _ = smi(capsys, "-L")
    assert listing.startswith("GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-")
    _, full, _ = smi(capsys, "-q")
    assert "SIMULATED" in full


def test_without_simulated_hardware_it_fails_like_a_missing_driver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(nvidia_smi_sim, "HARDWARE_FILE", tmp_path / "absent.json")
    code, _, err = smi(capsys, "-L")
    assert code == 9
    assert err.startswith("NVIDIA-SMI has failed because it couldn't communicate")


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb (dpkg)")
def test_package_is_named_and_described_as_simulated(tmp_path: Path) -> None:
    deb = simdriver.build(tmp_path)
    fields = subprocess.run(
        ["dpkg-deb", "--field", deb, "Package", "Version", "Description"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "Package: nvidia-driver-sim" in fields
    assert "Version: 550.127.05-1~ecohashsim1" in fields
    assert "Description: SIMULATED NVIDIA driver" in fields
    contents = subprocess.run(
        ["dpkg-deb", "--contents", deb], capture_output=True, text=True, check=True
    ).stdout
    assert "-rwxr-xr-x root/root" in contents and "./usr/bin/nvidia-smi" in contents


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb (dpkg)")
def test_the_simulated_toolkit_comes_in_the_standards_version_and_a_later_one(tmp_path: Path) -> None:
    versions = [
        subprocess.run(["dpkg-deb", "--field", deb, "Version"], capture_output=True, text=True, check=True).stdout.strip()
        for deb in simtoolkit.build(tmp_path)
    ]
    assert versions == [simtoolkit.PACKAGE_VERSION, simtoolkit.LATER_PACKAGE_VERSION]
    # The later one sorts above the standard's, so going back to the standard is a downgrade.
    subprocess.run(["dpkg", "--compare-versions", versions[1], "gt", versions[0]], check=True)
    standard = labstandard.simulated_standard(load_standard(), k3s_sha256="0" * 64)
    assert standard["nvidia_container_toolkit"]["version"] == simtoolkit.PACKAGE_VERSION
