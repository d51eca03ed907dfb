"""`ecohash render` as a user runs it: where it writes, what it says, how it refuses."""

from __future__ import annotations

from pathlib import Path

import yaml
from click.testing import CliRunner

from ecohash.commands.main import cli
from ecohash.inventory import load_site
from ecohash.lab import inventory as lab_inventory
from tests.conftest import EXAMPLE_SITE, REPO


def render(*args: str):
    return CliRunner().invoke(cli, ["render", *args], catch_exceptions=False)


def test_writes_rendered_site_by_default_and_says_what_it_checked(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = render(str(REPO / "inventories/nd-williston/site.yaml"))
    assert result.exit_code == 0, result.output
    assert result.output == ("nd-williston: 22 objects in rendered/nd-williston/, strict-valid for "
                             "Kubernetes 1.35, policies met\n")
    files = sorted(str(p.relative_to(tmp_path / "rendered/nd-williston"))
                   for p in (tmp_path / "rendered/nd-williston").rglob("*.yaml"))
    assert len(files) == 22
    assert "ecohash-c01/deployment-mistral-small.yaml" in files


def test_output_dot_in_a_folder_of_files_refuses_and_keeps_them(tmp_path: Path, monkeypatch) -> None:
    work = tmp_path / "work"
    (work / "notes").mkdir(parents=True)
    (work / "notes/plan.txt").write_text("mine\n")
    (work / "site.yaml").write_text((REPO / "inventories/nd-williston/site.yaml").read_text())
    monkeypatch.chdir(work)
    result = render("site.yaml", "-o", ".")
    assert result.exit_code == 2
    assert result.output == (f"ecohash: {work}: not empty and not written by ecohash (no "
                             ".ecohash-render in it); refusing to replace it: remove it or choose "
                             "another directory\n")
    assert sorted(str(p.relative_to(work)) for p in work.rglob("*")) == ["notes", "notes/plan.txt", "site.yaml"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]


def test_a_symlinked_output_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep.txt").write_text("mine\n")
    (tmp_path / "out").symlink_to(target)
    result = render(str(REPO / "inventories/nd-williston/site.yaml"), "-o", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert result.output == (f"ecohash: {tmp_path}/out: a symbolic link; ecohash writes into a real "
                             "directory, never through a link\n")
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    assert (tmp_path / "out").is_symlink()


def test_a_rerender_replaces_its_own_render_and_survives_an_interrupted_one(tmp_path: Path) -> None:
    site = str(REPO / "inventories/nd-williston/site.yaml")
    out = tmp_path / "out"
    assert render(site, "-o", str(out)).exit_code == 0
    (out / "ecohash-c01/stale.yaml").write_text("kind: Deployment\n")
    (tmp_path / ".out.previous").mkdir()  # as a render killed mid-swap leaves it
    (tmp_path / ".out.previous/old.yaml").write_text("kind: Deployment\n")
    result = render(site, "-o", str(out))
    assert result.exit_code == 0, result.output
    assert not (out / "ecohash-c01/stale.yaml").exists()
    assert len(list(out.rglob("*.yaml"))) == 22
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_dash_prints_one_yaml_stream(tmp_path: Path) -> None:
    result = render(str(REPO / "inventories/nd-williston/site.yaml"), "-o", "-")
    assert result.exit_code == 0
    documents = list(yaml.safe_load_all(result.output))
    assert len(documents) == 22
    assert all(d["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "ecohash" for d in documents)


def test_invalid_site_is_one_line_exit_2_and_nothing_written(write_site, tmp_path: Path) -> None:
    path = write_site(EXAMPLE_SITE, ("grid_mw: 12.5", "grid_mw: -1"))
    result = render(str(path), "-o", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert result.output == f"{path}:8: spec.power.grid_mw: must be greater than 0 (got -1)\n"
    assert not (tmp_path / "out").exists()


def test_a_site_without_a_cluster_has_nothing_to_render(write_site, tmp_path: Path) -> None:
    path = write_site(EXAMPLE_SITE, ("  kubernetes:\n    distribution: k3s\n    servers: [c01-r01-n01]\n", ""))
    result = render(str(path), "-o", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert result.output == f"ecohash: {path}: site tx-odessa has no spec.kubernetes: there is no cluster to declare\n"
    assert not (tmp_path / "out").exists()


def test_the_lab_site_renders_its_services(tmp_path: Path) -> None:
    # The site `ecohash lab up` writes, for two H100 and two L40S hosts.
    site_file = tmp_path / "lab" / "site.yaml"
    nodes = lab_inventory.layout_nodes(4, 2, [f"10.213.0.{11 + i}" for i in range(4)])
    lab_inventory.write(site_file, nodes, "10.213.0.0/24", lab_inventory.LabProvisioning(
        ssh_config=tmp_path / "ssh_config", apt_proxy="http://10.213.0.1:3142",
        mirror_url="http://10.213.0.1:8080", mirror_keyring_sha256="ab" * 32,
        registry_url="http://10.213.0.1:5000",
        standard_file=REPO / "node-standard.lock.yml"))
    assert load_site(site_file).name == "lab"
    result = render(str(site_file), "-o", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    written = {str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.yaml")}
    assert {"ecohash-c01/deployment-qwen-1-5b.yaml", "ecohash-c02/deployment-qwen-0-5b.yaml"} <= written
    chart = yaml.safe_load((tmp_path / "out/kube-system/helmchart-gpu-operator.yaml").read_text())
    # The lab has a site mirror, so the cluster would fetch the chart from it.
    assert chart["spec"]["chart"].startswith("http://10.213.0.1:8080/files/gpu-operator/")
