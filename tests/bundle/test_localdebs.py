"""Local .debs (`bundle build --deb`): copied, read with dpkg-deb, checked against the standard's pins."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from ecohash.bundle import localdebs
from ecohash.bundle.localdebs import LocalDebError, check
from ecohash.lab import labstandard, simdriver, simtoolkit
from ecohash.lab.debs import build_deb
from ecohash.standard import NodeStandard, load_standard

PRODUCTION = load_standard()


@pytest.fixture
def lab_standard(tmp_path: Path) -> NodeStandard:
    file = tmp_path / "lab-standard.yml"
    labstandard.write(file, labstandard.simulated_standard(PRODUCTION, "0" * 64, "sha256:" + "0" * 64))
    return load_standard(file)


def deb(directory: Path, package: str, version: str, architecture: str = "amd64",
        file_name: str | None = None, content: str = "") -> Path:
    control = (f"Package: {package}\nVersion: {version}\nArchitecture: {architecture}\n"
               "Maintainer: test <test@ecohash.invalid>\nDescription: a test package\n")
    return build_deb(directory, file_name or f"{package}_{version}_{architecture}.deb", control,
                     {"/usr/share/doc/test": (content or package, 0o644)})


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_directory_of_the_labs_simulated_debs_passes_against_the_lab_standard(tmp_path, lab_standard):
    given = tmp_path / "simulated"
    built = [*simtoolkit.build(given, (simtoolkit.PACKAGE_VERSION,)), simdriver.build(given)]
    checked = check(lab_standard, "debian12", [given], tmp_path / "work")
    assert [(d.package, d.version) for d in checked] == [  # in file-name order
        (simtoolkit.PACKAGE_NAME, simtoolkit.PACKAGE_VERSION),
        (simdriver.PACKAGE_NAME, simdriver.PACKAGE_VERSION),
    ]
    for original, deb_ in zip(built, checked, strict=True):
        # Carried from a private copy, named as Debian names it, with the original's bytes.
        assert deb_.path.parent == tmp_path / "work" and deb_.path.name == original.name
        assert deb_.sha256 == sha256(original) == sha256(deb_.path)
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == sorted(p.name for p in built)


def test_a_file_takes_debians_name_whatever_it_was_called(tmp_path):
    given = deb(tmp_path, "cuda-drivers-550", "550.127.05-1", file_name="driver.deb")
    (checked,) = check(PRODUCTION, "debian12", [given], tmp_path / "work")
    assert checked.given == given
    assert checked.path.name == "cuda-drivers-550_550.127.05-1_amd64.deb"


def test_a_version_other_than_the_pin_is_one_line_naming_the_file_and_leaves_no_copy(tmp_path, lab_standard):
    given = simtoolkit.build(tmp_path / "simulated", (simtoolkit.LATER_PACKAGE_VERSION,))[0]
    with pytest.raises(LocalDebError) as raised:
        check(lab_standard, "debian12", [given], tmp_path / "work")
    assert str(raised.value) == (
        f"{given}: {simtoolkit.PACKAGE_NAME} is version {simtoolkit.LATER_PACKAGE_VERSION}, the node standard "
        f"pins {simtoolkit.PACKAGE_VERSION} (nvidia_container_toolkit.version); refused")
    assert raised.value.exit_code == 2
    assert list((tmp_path / "work").iterdir()) == []


def test_packages_the_driver_pin_pattern_matches_are_held_to_the_drivers_version(tmp_path):
    # cuda-drivers-550 pulls in NVIDIA's libraries, which the nodes' apt preferences hold to its version.
    good = deb(tmp_path / "a", "libnvidia-compute-550", "550.127.05-1")
    assert [d.package for d in check(PRODUCTION, "debian12", [good], tmp_path / "work")] == [
        "libnvidia-compute-550"]
    bad = deb(tmp_path / "b", "libnvidia-compute-550", "550.90.07-1")
    with pytest.raises(LocalDebError, match=r"is version 550\.90\.07-1, the node standard pins 550\.127\.05-1 "
                                            r"\(nvidia_driver\.pin_packages\); refused$"):
        check(PRODUCTION, "debian12", [bad], tmp_path / "work")


def test_a_package_the_standard_does_not_pin_is_refused(tmp_path):
    # It would resolve like the archive's own and could shadow it.
    given = deb(tmp_path, "openssh-server", "1:99.0-1")
    with pytest.raises(LocalDebError) as raised:
        check(PRODUCTION, "debian12", [given], tmp_path / "work")
    assert str(raised.value).startswith(f"{given}: openssh-server 1:99.0-1 is no package the node standard "
                                        "pins; refused")


def test_an_architecture_the_nodes_do_not_run_is_refused(tmp_path):
    given = deb(tmp_path, "nvidia-persistenced", "550.127.05-1", architecture="arm64")
    with pytest.raises(LocalDebError, match=r"is for arm64, the nodes are amd64 or all; refused$"):
        check(PRODUCTION, "debian12", [given], tmp_path / "work")


def test_containerd_whose_bytes_are_not_the_pinned_ones_is_refused(tmp_path):
    pinned = PRODUCTION.containerd["debian12"]["containerd"]
    given = deb(tmp_path, "containerd", pinned.version)
    with pytest.raises(LocalDebError, match=f"has sha256 {sha256(given)}, the node standard pins "
                                            rf"{pinned.sha256} \(containerd\.debian12\.containerd\); refused$"):
        check(PRODUCTION, "debian12", [given], tmp_path / "work")


def test_two_different_files_for_one_package_version_are_refused(tmp_path):
    first = deb(tmp_path / "a", "nvidia-persistenced", "550.127.05-1")
    second = deb(tmp_path / "b", "nvidia-persistenced", "550.127.05-1", content="other bytes")
    with pytest.raises(LocalDebError, match=f"^{second}: nvidia-persistenced 550.127.05-1 is also {first}"):
        check(PRODUCTION, "debian12", [first, second], tmp_path / "work")


@pytest.mark.parametrize("kind", ["fifo", "device", "directory-fifo"])
def test_non_regular_files_are_refused_without_reading_them(tmp_path, kind):
    fifo = tmp_path / "share" / "driver.deb"
    fifo.parent.mkdir()
    os.mkfifo(fifo)  # a reader that opened it normally would block here forever
    given = {"fifo": fifo, "device": Path("/dev/zero"), "directory-fifo": fifo.parent}[kind]
    named = Path("/dev/zero") if kind == "device" else fifo
    with pytest.raises(LocalDebError) as raised:
        check(PRODUCTION, "debian12", [given], tmp_path / "work")
    assert str(raised.value) == f"{named}: not a regular file; refused (give .deb files or directories)"


def test_missing_empty_and_unreadable_inputs_are_one_line_each(tmp_path):
    work = tmp_path / "work"
    with pytest.raises(LocalDebError, match=f"^{tmp_path}/nowhere.deb: cannot read it as a .deb: No such file"):
        check(PRODUCTION, "debian12", [tmp_path / "nowhere.deb"], work)
    (tmp_path / "empty").mkdir()
    with pytest.raises(LocalDebError, match=f"^{tmp_path}/empty: no .deb files in this directory$"):
        check(PRODUCTION, "debian12", [tmp_path / "empty"], work)
    garbage = tmp_path / "garbage.deb"
    garbage.write_bytes(b"not an archive\n")
    with pytest.raises(LocalDebError) as raised:
        check(PRODUCTION, "debian12", [garbage], work)
    assert str(raised.value).startswith(f"{garbage}: not a readable .deb: ")
    assert "\n" not in str(raised.value)


def test_the_pins_by_name_follow_the_standard():
    names = localdebs.pins(PRODUCTION, "debian12")
    assert {name: pin.version for name, pin in names.items()} == {
        "cuda-drivers-550": "550.127.05-1", "nvidia-persistenced": "550.127.05-1",
        "nvidia-container-toolkit": "1.17.8-1", "nvidia-container-toolkit-base": "1.17.8-1",
        "libnvidia-container-tools": "1.17.8-1", "libnvidia-container1": "1.17.8-1",
        "containerd": "1.6.20~ds1-1+deb12u3", "runc": "1.1.5+ds1-1+deb12u1",
    }


@pytest.mark.parametrize(("package", "architecture", "reason"), [
    # dpkg-deb refuses this name itself...
    ("../../evil-nvidia", "amd64",
     "invalid package name in 'Package' field: must start with an alphanumeric character"),
    # ...but only warns about this architecture, which would name a file outside the work directory.
    ("x-nvidia", "../amd64", "its Architecture field '../amd64' is not Debian's syntax"),
])
def test_a_control_field_outside_debians_syntax_is_refused_before_it_names_a_file(tmp_path, package,
                                                                                   architecture, reason):
    # dpkg-deb --nocheck builds what dpkg's own checks would refuse to build.
    staging = tmp_path / "pkg" / "DEBIAN"
    staging.mkdir(parents=True)
    (staging / "control").write_text(f"Package: {package}\nVersion: 550.127.05-1\nArchitecture: {architecture}\n"
                                     "Maintainer: x <x@ecohash.invalid>\nDescription: x\n")
    given = tmp_path / "evil.deb"
    subprocess.run(["dpkg-deb", "--nocheck", "--root-owner-group", "--build", staging.parent, given],
                   check=True, capture_output=True)
    with pytest.raises(LocalDebError) as raised:
        check(PRODUCTION, "debian12", [given], tmp_path / "work" / "local")
    assert str(raised.value) == f"{given}: not a readable .deb: {reason}"
    assert list((tmp_path / "work").rglob("*")) == [tmp_path / "work" / "local"]
