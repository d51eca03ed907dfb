"""`ecohash plan --detailed-exitcode`: 0 nothing to change, 2 changes, 1 any error; and
render and plan give the same bytes whatever the hash seed or working directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ecohash.commands.main import cli
from ecohash.inventory import load_site
from ecohash.paths import project_root
from tests.rollout.recorded import record_rollout

SITE = "nd-williston"
ECOHASH = str(Path(sys.executable).parent / "ecohash")


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ECOHASH_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


@pytest.fixture
def site_file(tmp_path: Path) -> Path:
    path = tmp_path / "inventories" / SITE / "site.yaml"
    path.parent.mkdir(parents=True)
    shutil.copy(project_root() / "inventories" / SITE / "site.yaml", path)
    return path


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_no_rollout_recorded_means_changes_pending(site_file: Path, state: Path) -> None:
    result = run("plan", str(site_file), "--detailed-exitcode")
    assert result.exit_code == 2, result.output
    assert "57 node(s) to create (never provisioned)" in result.output
    # Without the flag the same plan is a success: 2 would mean invalid input.
    assert run("plan", str(site_file)).exit_code == 0


def test_after_a_rollout_0_then_2_after_an_edit_naming_it(site_file: Path, state: Path) -> None:
    record_rollout(load_site(site_file))
    unchanged = run("plan", str(site_file), "--detailed-exitcode")
    assert unchanged.exit_code == 0, unchanged.output
    assert "none: every node passed" in unchanged.output
    site_file.write_text(site_file.read_text().replace("cooling_kw: 180", "cooling_kw: 170", 1))
    changed = run("plan", str(site_file), "--detailed-exitcode")
    assert changed.exit_code == 2
    assert "node c02-r01-n01: update: inventory variables changed" in changed.output
    assert "ecohash_gpu_cap_w: 337 -> " in changed.output
    assert "object ConfigMap ecohash-system/power-budget-c02: update" in changed.output
    as_json = run("plan", str(site_file), "--detailed-exitcode", "--json")
    assert as_json.exit_code == 2
    changes = json.loads(as_json.output)["changes"]
    assert changes["pending"] and changes["counts"]["nodes_update"] == 40


@pytest.mark.parametrize(("arguments", "message"), [
    (["no-such-site"], "ecohash: no site 'no-such-site'"),
    (["--no-such-flag"], "No such option"),
])
def test_any_error_exits_1_with_detailed_exit_codes_and_2_without(
        site_file: Path, state: Path, arguments: list[str], message: str) -> None:
    target = [str(site_file)] if arguments[0].startswith("--") else []
    detailed = run("plan", *target, *arguments, "--detailed-exitcode")
    assert detailed.exit_code == 1
    assert message in detailed.output
    assert run("plan", *target, *arguments).exit_code == 2


def test_an_infeasible_site_is_an_error_not_a_change(site_file: Path, state: Path) -> None:
    site_file.write_text(site_file.read_text().replace("cooling_kw: 180", "cooling_kw: 20", 1))
    result = run("plan", str(site_file), "--detailed-exitcode")
    assert result.exit_code == 1
    assert result.output.startswith(f"{site_file}:")


def test_drift_reports_bad_input_as_an_error(state: Path) -> None:
    assert run("drift", "no-such-site").exit_code == 1
    assert run("drift", "--no-such-flag", "x").exit_code == 1


@pytest.mark.slow
def test_render_and_plan_are_byte_identical_across_hash_seeds_and_working_directories(
        site_file: Path, state: Path, tmp_path: Path) -> None:
    repository = site_file.parent.parent.parent
    # An inventory repository: files are named from its root, wherever it is checked out.
    subprocess.run(["git", "init", "-q", str(repository)], check=True)
    record_rollout(load_site(site_file))
    site_file.write_text(site_file.read_text().replace("cooling_kw: 180", "cooling_kw: 170", 1))
    outputs: dict[str, set[bytes]] = {"render": set(), "plan": set()}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # The site by name through $ECOHASH_INVENTORIES, and by path relative to the working directory.
    for seed, cwd, site in (("0", repository, f"inventories/{SITE}/site.yaml"),
                            ("1234", elsewhere, SITE), ("random", Path("/"), SITE)):
        env = {**os.environ, "PYTHONHASHSEED": seed, "ECOHASH_INVENTORIES": str(site_file.parent.parent),
               "ECOHASH_STATE_DIR": str(state)}
        for name, command in (("render", [ECOHASH, "render", site, "-o", "-"]),
                              ("plan", [ECOHASH, "plan", site, "--json", "--detailed-exitcode"])):
            result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, check=False)
            assert result.returncode in (0, 2), result.stderr.decode()
            outputs[name].add(result.stdout)
    assert len(outputs["render"]) == 1 and len(outputs["plan"]) == 1
    plan = json.loads(next(iter(outputs["plan"])))
    assert plan["file"] == f"inventories/{SITE}/site.yaml"
    assert plan["changes"]["pending"] and plan["changes"]["objects"]


# Drift exits 1 for any error, as plan does with --detailed-exitcode: 2 means drift there.
@pytest.mark.parametrize(("command", "exit_code"), [
    (["plan"], 2), (["plan", "--detailed-exitcode"], 1), (["status"], 2), (["provision"], 2),
    (["provision", "--dry-run"], 2), (["drift"], 1),
])
def test_a_damaged_state_file_is_one_line_for_every_command_that_reads_it(
        write_site, state: Path, command: list[str], exit_code: int) -> None:
    state_file = state / "rollouts" / "tx-odessa" / "state.json"
    state_file.parent.mkdir(parents=True)
    state_file.write_text('{"schema": 1, "site": "tx-odessa", "nodes": {"c01-r01-n01": "passed"}}')
    result = CliRunner().invoke(cli, [command[0], str(write_site()), *command[1:]])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == exit_code
    assert result.output == (f"ecohash: {state_file}: not a rollout state: nodes.c01-r01-n01: input should "
                             "be an object (got 'passed')\n")
    assert not (state / "runs").exists()  # refused before anything ran
