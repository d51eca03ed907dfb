"""The simulated driver without a lab: nvidia-smi's answers and the package's metadata."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from ecohash.lab import labstandard, nvidia_smi_sim, simdriver, simtoolkit
from ecohash.lab.simhardware import GPU_MODELS, GpuModel, SimulatedGpus, with_fault
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


def draws(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return smi(capsys, "--query-gpu=power.draw,enforced.power.limit", "--format=csv,noheader,nounits")[1].splitlines()


def test_draw_follows_the_enforced_limit_of_gpus_working_flat_out(
    h100_host: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert draws(capsys) == ["700.00, 700.00", "698.63, 700.00"]  # just under TDP
    assert smi(capsys, "-pl", "450")[0] == 0
    assert draws(capsys) == ["450.00, 450.00", "450.00, 450.00"]
    code, _, err = smi(capsys, "-pl", "701")
    assert (code, err.splitlines()[0]) == (2, (
        "Provided power limit 701.00 W is not a valid power limit which should be between "
        "200.00 W and 700.00 W for GPU 00000000:18:00.0"
    ))
    assert draws(capsys) == ["450.00, 450.00", "450.00, 450.00"]


def test_a_simulated_demand_below_the_limit_is_what_the_gpu_draws(
    h100_host: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    smi(capsys, "-pl", "450")
    code, out, _ = smi(capsys, "--sim-set-demand=300", "-i", "1")
    assert (code, out) == (0, "SIMULATED demand of GPU 00000000:38:00.0 set to 300.00 W.\nAll done.\n")
    assert draws(capsys) == ["450.00, 450.00", "300.00, 450.00"]
    smi(capsys, "--sim-set-demand", "0")  # no work: the idle draw
    assert draws(capsys) == ["72.00, 450.00", "72.00, 450.00"]
    code, _, err = smi(capsys, "--sim-set-demand=lots")
    assert (code, err) == (2, 'Invalid value "lots" for the SIMULATED demand (watts).\n')


def test_the_energy_counter_integrates_the_draw_since_driver_load(
    h100_host: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1_000_000.0]
    monkeypatch.setattr(nvidia_smi_sim.time, "time", lambda: clock[0])

    def energy() -> list[int]:
        out = smi(capsys, "--query-gpu=total_energy_consumption", "--format=csv,noheader,nounits")[1]
        return [int(value) for value in out.split()]

    assert energy() == [0, 0]  # the first invocation loads the driver
    clock[0] += 10
    assert energy() == [7_000_000, 6_986_300]  # mJ: 700 W and 698.63 W for 10 s
    smi(capsys, "-i", "0", "-pl", "450")
    clock[0] += 20
    assert energy() == [7_000_000 + 9_000_000, 6_986_300 + 13_972_600]
    code, out, _ = smi(capsys, "--query-gpu=total_energy_consumption", "--format=csv")
    assert out.splitlines()[:2] == ["total_energy_consumption [mJ]", "16000000 mJ"]


def test_the_simulated_demand_needs_root(
    h100_host: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    code, _, err = smi(capsys, "--sim-set-demand=100")
    assert code == 4 and "Insufficient Permissions" in err


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


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb (dpkg)")
def test_the_simulated_toolkit_comes_in_the_standards_version_and_a_later_one(tmp_path: Path) -> None:
    versions = [
        subprocess.run(["dpkg-deb", "--field", deb, "Version"], capture_output=True, text=True, check=True).stdout.strip()
        for deb in simtoolkit.build(tmp_path)
    ]
    assert versions == [simtoolkit.PACKAGE_VERSION, simtoolkit.LATER_PACKAGE_VERSION]
    # The later one sorts above the standard's, so going back to the standard is a downgrade.
    subprocess.run(["dpkg", "--compare-versions", versions[1], "gt", versions[0]], check=True)
    standard = labstandard.simulated_standard(load_standard(), k3s_sha256="0" * 64,
                                              image_digest="sha256:" + "1" * 64)
    assert standard["nvidia_container_toolkit"]["version"] == simtoolkit.PACKAGE_VERSION
