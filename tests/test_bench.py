"""bench/: the benchmark scripts still run and their generated sites are what they claim.

Nothing here is timed (the figures are bench/'s business, docs/benchmarks.md): these only
keep the scripts from rotting between the runs that produce the figures.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ecohash.inventory import load_site

ROOT = Path(__file__).resolve().parent.parent


def bench(script: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "bench" / script), *arguments],
                          capture_output=True, text=True, timeout=300, check=False, cwd=ROOT)


def test_generated_sites_are_deterministic_valid_and_of_the_size_asked(tmp_path: Path) -> None:
    for run in ("a", "b"):
        result = bench("sites.py", "--sizes", "100,1000", str(tmp_path / run))
        assert result.returncode == 0, result.stderr
    first = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.yaml"))
    assert len(first) == 2
    for relative in first:
        assert (tmp_path / "a" / relative).read_bytes() == (tmp_path / "b" / relative).read_bytes()
    sizes = sorted(len(load_site(tmp_path / "a" / relative).nodes) for relative in first)
    assert sizes == [100, 1000]


@pytest.mark.slow
def test_plan_scaling_measures_and_judges_every_command(tmp_path: Path) -> None:
    saved = tmp_path / "figures.json"
    result = bench("plan_scaling.py", "--sizes", "100,1000", "--repeat", "1",
                   "--sites-dir", str(tmp_path / "sites"), "--save", str(saved))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    for command in ("plan", "ansible-inventory", "yaml parse", "render"):
        assert f"bench-1000: {command} 1/1:" in result.stderr  # progress, as it measures
    # Sizes under 10,000 cannot judge the 10,000-node targets, but growth is judged.
    assert "plan: growth linear" in result.stdout
    reprinted = bench("plan_scaling.py", "--load", str(saved), "--markdown")
    assert reprinted.returncode == 0, reprinted.stderr
    assert "| plan |" in reprinted.stdout


def test_bundle_verify_bench_measures_verify_against_sha256sum() -> None:
    result = bench("bundle_verify.py", "--mib", "8", "--rounds", "1")
    assert "verify / sha256sum throughput: " in result.stdout, result.stdout + result.stderr
    assert result.returncode in (0, 1)  # 1 is a measured miss of the target, not a broken script


@pytest.mark.slow
def test_inventory_scaling_compares_the_plugin_with_its_static_twin(tmp_path: Path) -> None:
    out = tmp_path / "inventory_scaling.txt"
    result = bench("inventory_scaling.py", "--sizes", "100", "--repeat", "1", "--out", str(out))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    # The static inventory listed back what the plugin listed (or the script stops), and
    # the playbook reached its first task.
    for measured in ("plugin --export cold 1:", "plugin --export 1:", "static --export 1:", "plugin --list 1:",
                     "first task 1:"):
        assert f"bench-100: {measured}" in result.stderr
    # 100 nodes cannot judge the 10,000-node targets, and says so.
    assert "n/a: targets are for 10,000 nodes" in result.stdout
    assert out.read_text() == result.stdout


def test_report_size_measures_the_three_forms_of_the_report(tmp_path: Path) -> None:
    out = tmp_path / "report_size.txt"
    result = bench("report_size.py", "--sizes", "100", "--out", str(out))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    rows = [line.split() for line in out.read_text().splitlines() if line.startswith("   100 ")]
    assert [row[1] for row in rows] == ["json", "text", "html"]
    assert all(int(row[2].replace(",", "")) > 0 for row in rows)


@pytest.mark.slow
def test_fleet_speed_runs_fleet_over_generated_sites_and_judges_the_target(tmp_path: Path) -> None:
    out = tmp_path / "fleet_speed.txt"
    result = bench("fleet_speed.py", "--sites", "3", "--nodes", "100", "--repeat", "1", "--out", str(out))
    assert result.returncode in (0, 1), result.stdout[-2000:] + result.stderr[-2000:]
    assert "fleet --json --html 1/1: " in result.stderr
    assert "target: 3 sites of 100 nodes under 5 s: " in out.read_text()
