"""`ecohash bundle build lab --deb`: the lab's bundle built with the public command, as a site's is.

The lab's site file, SIMULATED standard and .debs are written as `lab up` writes them, in a
state directory of the test's own; packages resolve in the lab's cached base (read only).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from ecohash.commands.main import cli
from ecohash.lab import inventory, mirror, simdriver, simtoolkit
from ecohash.lab.layout import LabPaths, inventory_file
from ecohash.standard import load_standard
from tests.bundle.test_contents import BASE, needs_base

pytestmark = [needs_base, pytest.mark.slow]


def run(*args: str | Path):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def lab_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LabPaths:
    """The lab's site `lab`, its SIMULATED standard and .debs, with the real base, keyed for bundles."""
    monkeypatch.setenv("ECOHASH_STATE_DIR", str(tmp_path / "state"))
    paths = LabPaths.current()
    paths.root.mkdir(parents=True)
    assert BASE is not None
    paths.base_cache.symlink_to(BASE.parents[1])
    simulated = mirror.write_simulated(paths, load_standard())
    nodes = inventory.layout_nodes(2, 2, ["10.213.0.11", "10.213.0.12"])
    inventory.write(inventory_file(), nodes, "10.213.0.0/24", inventory.LabProvisioning(
        ssh_config=paths.run / "ssh" / "config", apt_proxy=None, mirror_url=mirror.mirror_url(),
        mirror_keyring_sha256="0" * 64, registry_url="http://10.213.0.1:5000",
        standard_file=simulated.standard_file, mirror_only=True))
    assert run("bundle", "keygen", "lab").exit_code == 0
    return paths


def test_the_lab_bundle_is_built_with_local_debs_through_the_cli_and_a_delta_from_it(lab_paths, tmp_path):
    out = tmp_path / "bundle"
    built = run("bundle", "build", "lab", "-o", out, "--deb", lab_paths.simulated_debs)
    assert built.exit_code == 0, built.output
    assert "lab: the lab's SIMULATED k3s and inference image, made again in " in built.stderr
    entries = {e["destination"]: e for e in json.loads((out / "manifest.json").read_text())["entries"]}
    # The .debs given are recorded with their sha256 in the signed manifest.
    for deb in sorted(lab_paths.simulated_debs.iterdir()):
        assert entries[f"apt/{deb.name}"]["sha256"] == sha256(deb)
        assert entries[f"apt/{deb.name}"]["kind"] == "deb"
    assert any(name.startswith("apt/containerd_") for name in entries)  # the closure, from Debian
    standard = load_standard(lab_paths.standard_file)
    assert entries[f"files/k3s/{standard.k3s.version}/k3s"]["sha256"] == standard.k3s.sha256
    assert f"registry/docker.io/ecohash-lab/simulated-inference@{standard.inference_runtime.digest}" in entries
    verified = run("bundle", "verify", out, "--site", "lab")
    assert verified.exit_code == 0, verified.output

    # A standard rolled forward to the later toolkit: its .deb given, the delta carries it alone.
    document = yaml.safe_load(lab_paths.standard_file.read_text())
    document["nvidia_container_toolkit"]["version"] = simtoolkit.LATER_PACKAGE_VERSION
    lab_paths.standard_file.write_text(yaml.safe_dump(document))
    later = simtoolkit.build(tmp_path / "later", (simtoolkit.LATER_PACKAGE_VERSION,))[0]
    delta = tmp_path / "delta"
    driver = lab_paths.simulated_debs / simdriver.deb_file_name()
    built = run("bundle", "build", "lab", "-o", delta, "--from", out, "--deb", later, "--deb", driver)
    assert built.exit_code == 0, built.output
    assert [p.name for p in (delta / "blobs" / "sha256").iterdir()] == [sha256(later)]
    manifest = json.loads((delta / "manifest.json").read_text())
    assert manifest["base"] == {"manifest_sha256": sha256(out / "manifest.json")}
    assert {e["destination"] for e in manifest["entries"]} == set(entries) - {
        f"apt/{simtoolkit.deb_file_name(simtoolkit.PACKAGE_VERSION)}"} | {f"apt/{later.name}"}
    verified = run("bundle", "verify", delta, "--site", "lab", "--base", out)
    assert verified.exit_code == 0, verified.output


def test_a_deb_at_another_version_than_the_pin_is_refused_in_one_line_and_nothing_is_written(lab_paths,
                                                                                            tmp_path):
    later = simtoolkit.build(tmp_path / "later", (simtoolkit.LATER_PACKAGE_VERSION,))[0]
    out = tmp_path / "bundle"
    result = run("bundle", "build", "lab", "-o", out, "--deb", lab_paths.simulated_debs, "--deb", later)
    assert result.exit_code == 2
    assert result.stderr == (
        f"ecohash: {later}: {simtoolkit.PACKAGE_NAME} is version {simtoolkit.LATER_PACKAGE_VERSION}, the node "
        f"standard pins {simtoolkit.PACKAGE_VERSION} (nvidia_container_toolkit.version); refused\n")
    assert not out.exists()


def test_without_the_labs_debs_the_error_says_how_to_give_them(lab_paths, tmp_path):
    result = run("bundle", "build", "lab", "-o", tmp_path / "bundle")
    assert result.exit_code == 1
    assert "Unable to locate package nvidia-driver-sim" in result.stderr
    assert result.stderr.rstrip().endswith("must be given as local .debs (--deb FILE|DIR); the lab's "
                                           f"SIMULATED ones are in {lab_paths.simulated_debs}")
    assert len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "bundle").exists()
