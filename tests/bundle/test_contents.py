"""collect(): the node standard turned into Items; pins checked, failing closed with one line."""

from __future__ import annotations

import glob
import hashlib
from pathlib import Path

import pytest
import yaml

from ecohash.bundle import apt_closure, contents
from ecohash.bundle.contents import ContentSources, collect, role_packages
from ecohash.errors import EcohashError, InvalidInputError
from ecohash.inventory.loader import load_site
from ecohash.lab import labstandard, simdriver, simimage, simk3s, simtoolkit
from ecohash.paths import project_root
from ecohash.standard import load_standard
from tests.conftest import EXAMPLE_SITE

PRODUCTION = project_root() / "node-standard.lock.yml"
BASES = sorted(glob.glob("/var/lib/ecohash/lab/base/*/rootfs"))
BASE = Path(BASES[0]) if BASES else None
needs_base = pytest.mark.skipif(
    BASE is None or not (BASE / "var/lib/dpkg/status").is_file(),
    reason="needs the lab's base root file system (built by `ecohash lab up`) and a route to Debian",
)
EVERYTHING_BUT = {part: frozenset(contents.PARTS) - {part} for part in contents.PARTS}


def lab_standard(tmp_path: Path) -> tuple[Path, ContentSources]:
    """The lab's SIMULATED standard and its local sources, as `lab up` would hand them."""
    debs = (simdriver.build(tmp_path / "sim"), *simtoolkit.build(tmp_path / "sim", (simtoolkit.PACKAGE_VERSION,)))
    production = load_standard(PRODUCTION)
    k3s, k3s_sha256 = simk3s.build(tmp_path / "simfiles", production.k3s.version)
    standard_file = tmp_path / "lab-standard.yml"
    image = simimage.build(tmp_path / "image")
    labstandard.write(standard_file, labstandard.simulated_standard(production, k3s_sha256, image.digest))
    return standard_file, ContentSources(base_root=BASE, debs=debs, files={production.k3s.url: k3s})


def test_role_packages_follow_the_roles_and_the_standard() -> None:
    standard = load_standard(PRODUCTION)
    base_packages = yaml.safe_load((project_root() / "roles/base/defaults/main.yml").read_text())["base_packages"]
    cpu = role_packages(standard, "debian12", gpus=False)
    assert cpu == [*base_packages, "containerd=1.6.20~ds1-1+deb12u3", "runc=1.1.5+ds1-1+deb12u1"]
    gpu = role_packages(standard, "debian12", gpus=True)
    assert gpu[len(cpu):] == [
        "linux-headers-amd64",
        "cuda-drivers-550=550.127.05-1", "nvidia-persistenced=550.127.05-1",
        "nvidia-container-toolkit=1.17.8-1", "nvidia-container-toolkit-base=1.17.8-1",
        "libnvidia-container-tools=1.17.8-1", "libnvidia-container1=1.17.8-1",
    ]
    with pytest.raises(EcohashError, match="pins no containerd for ubuntu2204"):
        role_packages(standard, "ubuntu2204", gpus=False)


def test_an_executor_adds_the_executor_roles_packages_to_the_apt_closure() -> None:
    standard = load_standard(PRODUCTION)
    executor_packages = yaml.safe_load(
        (project_root() / "roles/executor/defaults/main.yml").read_text())["executor_packages"]
    assert "python3-venv" in executor_packages
    nodes_only = role_packages(standard, "debian12", gpus=False)
    with_executor = role_packages(standard, "debian12", gpus=False, executor=True)
    assert sorted(with_executor) == sorted(nodes_only + executor_packages)


@needs_base
@pytest.mark.slow
def test_lab_debs_are_the_closure_resolved_in_the_base(tmp_path: Path) -> None:
    standard_file, sources = lab_standard(tmp_path)
    items = collect(standard_file, None, tmp_path / "work",
                    sources=ContentSources(**{**sources.__dict__, "leave_out": EVERYTHING_BUT["apt"]}))
    by_name = {item.destination: item for item in items}
    assert {item.kind for item in items} == {"deb"}
    production = load_standard(PRODUCTION)
    for pinned in production.containerd["debian12"].values():
        item = by_name[f"apt/{Path(pinned.url).name}"]
        assert item.sha256 == pinned.sha256 == hashlib.sha256(item.path.read_bytes()).hexdigest()
    # The SIMULATED packages come from the lab's own builds, byte for byte, through a checked copy.
    driver = by_name[f"apt/{simdriver.deb_file_name()}"]
    assert driver.path != sources.debs[0]
    assert driver.sha256 == hashlib.sha256(sources.debs[0].read_bytes()).hexdigest()
    # A dependency nobody named (pciutils -> libpci3) is in; what the base has (python3) is not.
    assert any(name.startswith("apt/libpci3_") for name in by_name)
    assert not any(name.startswith("apt/python3.11_") for name in by_name)
    for item in items:
        assert hashlib.sha256(item.path.read_bytes()).hexdigest() == item.sha256


@needs_base
@pytest.mark.slow
def test_production_debs_name_what_upstream_lacks(tmp_path: Path) -> None:
    sources = ContentSources(base_root=BASE, leave_out=EVERYTHING_BUT["apt"])
    with pytest.raises(EcohashError) as error:
        collect(PRODUCTION, None, tmp_path, sources=sources)
    message = str(error.value)
    assert "\n" not in message
    assert "Unable to locate package cuda-drivers-550" in message
    assert "must be given as local .debs" in message


def test_a_base_that_is_no_root_file_system_is_one_line(tmp_path: Path) -> None:
    sources = ContentSources(base_root=tmp_path, leave_out=EVERYTHING_BUT["apt"])
    with pytest.raises(EcohashError, match=f"^{tmp_path}: no Debian root file system"):
        collect(PRODUCTION, None, tmp_path / "work", sources=sources)


def test_platform_comes_from_the_roots_os_release(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/os-release").write_text('PRETTY_NAME="Ubuntu 24.04"\nID=ubuntu\nVERSION_ID="24.04"\n')
    assert apt_closure.platform_of(tmp_path) == "ubuntu2404"


def test_a_root_of_a_platform_no_standard_can_pin_is_refused_with_the_ones_it_can(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/os-release").write_text('ID=centos\nVERSION_ID="9"\n')
    with pytest.raises(EcohashError) as error:
        apt_closure.platform_of(tmp_path)
    assert str(error.value) == (f"{tmp_path}: centos9 is not a platform ecohash builds nodes on "
                                "(debian12, ubuntu2204, ubuntu2404)")


def test_k3s_from_sources_is_checked_against_the_pin(tmp_path: Path) -> None:
    standard_file, sources = lab_standard(tmp_path)
    items = collect(standard_file, None, tmp_path / "work",
                    sources=ContentSources(files=sources.files, leave_out=EVERYTHING_BUT["k3s"]))
    (k3s,) = items
    version = load_standard(PRODUCTION).k3s.version
    assert (k3s.kind, k3s.destination) == ("file", f"files/k3s/{version}/k3s")
    assert k3s.sha256 == hashlib.sha256(k3s.path.read_bytes()).hexdigest()
    # The same file against the production pin: refused, in one line, and left where it was.
    with pytest.raises(EcohashError) as error:
        collect(PRODUCTION, None, tmp_path / "work",
                sources=ContentSources(files=sources.files, leave_out=EVERYTHING_BUT["k3s"]))
    assert str(error.value).startswith(f"k3s {version} ({k3s.path}) has sha256 {k3s.sha256}, but ")
    assert str(error.value).endswith("is pinned: refused")
    assert k3s.path.is_file()


@pytest.mark.parametrize(("part", "named"), [
    ("k3s", "cannot download k3s v1.35.6+k3s1 from https://github.com/k3s-io/k3s/releases/download/"),
    ("gpu_operator", "cannot download the gpu-operator chart v25.3.4 from "
                     "https://helm.ngc.nvidia.com/nvidia/charts/gpu-operator-v25.3.4.tgz"),
    ("inference_runtime", "cannot reach registry https://registry-1.docker.io"),
])
def test_production_downloads_without_a_route_name_what_is_missing(tmp_path: Path, part: str,
                                                                   named: str) -> None:
    # This machine reaches Debian and PyPI only: GitHub, NVIDIA and Docker Hub do not resolve.
    with pytest.raises(EcohashError) as error:
        collect(PRODUCTION, None, tmp_path, sources=ContentSources(leave_out=EVERYTHING_BUT[part]))
    assert named in str(error.value)
    assert "\n" not in str(error.value)
    assert not list(tmp_path.rglob("*.partial"))


def test_unknown_parts_and_models_without_a_site_are_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="cannot leave out drivers: the parts are apt, k3s"):
        collect(PRODUCTION, None, tmp_path, sources=ContentSources(leave_out=frozenset({"drivers"})))
    with pytest.raises(InvalidInputError, match="--models needs a site"):
        collect(PRODUCTION, None, tmp_path, models=True)


def test_models_come_from_the_sites_services(tmp_path: Path) -> None:
    site_file = tmp_path / "site.yaml"
    site_file.write_text(EXAMPLE_SITE + "  services:\n    - {name: chat, model: org/tiny, gpu_model: h100-sxm,"
                         " gpus_per_replica: 1}\n")
    revision = "a" * 40
    cache = tmp_path / "hub"
    weights = b"weights" * 100
    sha256 = hashlib.sha256(weights).hexdigest()
    repo = cache / "models--org--tiny"
    (repo / "blobs").mkdir(parents=True)
    (repo / "blobs" / sha256).write_bytes(weights)
    (repo / "blobs" / ("c" * 40)).write_text("{}\n")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    snapshot = repo / "snapshots" / revision
    (snapshot / "sub").mkdir(parents=True)
    (snapshot / "sub" / "model.safetensors").symlink_to(f"../../../blobs/{sha256}")
    (snapshot / "config.json").symlink_to(f"../../blobs/{'c' * 40}")
    sources = ContentSources(models=cache, leave_out=frozenset(contents.PARTS))
    items = collect(PRODUCTION, load_site(site_file), tmp_path / "work", models=True, sources=sources)
    assert [(item.kind, item.destination, item.sha256) for item in items] == [
        ("model-file", f"models/org/tiny/{revision}/config.json", hashlib.sha256(b"{}\n").hexdigest()),
        ("model-file", f"models/org/tiny/{revision}/sub/model.safetensors", sha256),
    ]
    assert items[1].path == repo / "blobs" / sha256
    # A blob whose bytes are not the sha256 it is named by: a damaged cache, refused.
    (repo / "blobs" / sha256).write_bytes(weights + b"x")
    with pytest.raises(EcohashError, match="its bytes hash to .*: refused"):
        collect(PRODUCTION, load_site(site_file), tmp_path / "work", models=True, sources=sources)
