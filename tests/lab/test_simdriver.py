"""The simulated driver without a lab: nvidia-smi's answers and the package's metadata."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from ecohash.lab import nvidia_smi_sim, simdriver
from ecohash.lab.simhardware import GPU_MODELS, GpuModel, SimulatedGpus, with_fault


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


def test_gpus_that_remap_rows_report_retired_pages_as_na(
    h100_host: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = smi(capsys, "--query-gpu=index,retired_pages.pending", "--format=csv,noheader")
    assert (code, out) == (0, "0, [N/A]\n1, [N/A]\n")


def test_remapped_rows_answer_like_the_real_tool_with_an_injected_pending_remap(
    h100_host: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hardware_file = h100_host / "etc/ecohash-sim/gpus.json"
    hardware = json.loads(hardware_file.read_text())
    hardware_file.write_text(json.dumps(with_fault(hardware, 1, "remapped_rows_pending", True)))
    fields = ("gpu_uuid,remapped_rows.correctable,remapped_rows.uncorrectable,"
              "remapped_rows.pending,remapped_rows.failure")
    code, out, _ = smi(capsys, f"--query-remapped-rows={fields}", "--format=csv")
    uuids = [gpu["uuid"] for gpu in hardware["gpus"]]
    assert (code, out.splitlines()) == (0, [
        "gpu_uuid, remapped_rows.correctable, remapped_rows.uncorrectable, remapped_rows.pending, "
        "remapped_rows.failure",
        f"{uuids[0]}, 0, 0, 0, 0",
        f"{uuids[1]}, 0, 0, 1, 0",
    ])
    code, out, _ = smi(capsys, "-q", "-d", "ROW_REMAPPER", "-i", "1")
    assert code == 0
    assert "        Pending                           : Yes" in out.splitlines()
    code, _, err = smi(capsys, "--query-remapped-rows=remapped_rows.nope", "--format=csv")
    assert (code, err) == (2, 'Field "remapped_rows.nope" is not a valid field to query.\n')


def test_gpus_that_retire_pages_report_remapped_rows_as_na(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    v100 = GpuModel("v100", "Tesla V100-SXM2-32GB", tdp_w=300, min_limit_w=150, idle_draw_w=40,
                    row_remapping=False)
    description = SimulatedGpus("old-node", v100, 1).description()
    (tmp_path / "gpus.json").write_text(json.dumps(with_fault(description, 0, "retired_pages_pending", True)))
    monkeypatch.setattr(nvidia_smi_sim, "HARDWARE_FILE", tmp_path / "gpus.json")
    monkeypatch.setattr(nvidia_smi_sim, "STATE_FILE", tmp_path / "state.json")
    assert smi(capsys, "--query-gpu=retired_pages.pending", "--format=csv,noheader")[1] == "Yes\n"
    out = smi(capsys, "--query-remapped-rows=remapped_rows.pending,remapped_rows.failure",
              "--format=csv,noheader")[1]
    assert out == "[N/A], [N/A]\n"


def test_a_fault_the_gpu_cannot_have_is_refused() -> None:
    description = SimulatedGpus("c01-r01-n01", GPU_MODELS["h100-sxm"], 2).description()
    with pytest.raises(ValueError, match="NVIDIA H100 80GB HBM3 does not report retired pages"):
        with_fault(description, 0, "retired_pages_pending", True)
    with pytest.raises(ValueError, match="known faults are"):
        with_fault(description, 0, "melted", True)
