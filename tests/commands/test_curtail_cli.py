"""`ecohash curtail start|status|release`: options, the dry run's table and JSON, one-line errors with
exit 2, and the legacy one-command spelling."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from ecohash.commands.main import cli
from tests.conftest import REPO

TX = str(REPO / "inventories" / "tx-odessa" / "site.yaml")


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def dry_json(*args: str) -> dict:
    result = run("curtail", "start", TX, *args, "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_dry_run_json_of_a_program():
    data = dry_json("--program", "ers-10")
    assert (data["site"], data["target"], data["program"]) == ("tx-odessa", "program ers-10 (to 3.5 MW)", "ers-10")
    assert (data["target_mw"], data["it_target_kw"], data["pue"]) == (3.5, 2800.0, 1.25)
    assert (data["planned_facility_mw"], data["planned_draw_kw"]) == (3.88536, 3108.288)
    # c04's 960 GPUs from 664 W to 342 W: 3,108,288 - 960 x 322 = 2,799,168 W.
    assert (data["draw_kw"], data["facility_draw_mw"]) == (2799.168, 3.49896)
    assert (data["infeasible"], data["changed"], data["binding_tier"], data["binding_w"]) == (False, True, 3, 342)
    assert (data["duration_s"], data["lasts"]) == (8 * 3600, "8h (program ers-10's max_hours)")
    assert data["measured"] is None
    c01, c04 = data["containers"][0], data["containers"][3]
    assert (c01["name"], c01["flex"], c01["draw_kw"], c01["throughput_kept_pct"]) == ("c01", 1, 719.616, 100.0)
    assert c01["throughput_estimate"] is False  # nothing changed there
    assert (c04["name"], c04["flex"], c04["planned_draw_kw"], c04["draw_kw"]) == ("c04", 3, 949.44, 640.32)
    assert c04["caps"] == [{"gpu_model": "h100-sxm", "gpus": 960, "planned_gpu_cap_w": 664, "gpu_cap_w": 342,
                            "held": False}]
    assert c04["throughput_estimate"] is True and 0 < c04["throughput_kept_pct"] < 100
    nodes = {n["name"]: n for n in data["nodes"]}
    assert len(nodes) == 408
    assert nodes["c04-r01-n01"] == {"name": "c04-r01-n01", "container": "c04", "gpu_model": "h100-sxm",
                                    "gpus": 8, "planned_gpu_cap_w": 664, "gpu_cap_w": 342, "held": False}
    assert (nodes["c01-r01-n01"]["gpu_cap_w"], nodes["c01-r01-n01"]["planned_gpu_cap_w"]) == (612, 612)


def test_dry_run_by_percent_and_for():
    data = dry_json("--by", "20%", "--for", "1h30m")
    assert (data["target"], data["target_mw"]) == ("by 20%", 3.108288)
    assert (data["duration_s"], data["lasts"]) == (5400, "1h30m (--for)")
    assert (data["tiers_at_floor"], data["binding_tier"]) == ([3], 1)
    assert data["draw_kw"] <= data["it_target_kw"]


def test_dry_run_by_mw_and_nothing_to_do():
    assert dry_json("--by", "0.5")["target_mw"] == 3.38536
    data = dry_json("--to", "5")
    assert (data["changed"], data["binding_tier"], data["draw_kw"]) == (False, None, 3108.288)
    assert data["lasts"] == "until released"


def test_dry_run_table():
    result = run("curtail", "start", TX, "--program", "4cp", "--dry-run")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "Target program 4cp (by 25%): facility draw <= 2.914 MW, IT draw <= 2,331.216 kW (÷ PUE 1.25); " \
           "lasts 3h (program 4cp's max_hours)" in out
    assert "h100-sxm 612 → 468 ×768" in out and "h100-sxm 664 → 200 ×960" in out
    assert "719.616 → 609.024" in out
    assert "ESTIMATE" in out
    assert ("Facility draw 3.885 MW planned → 2.914 MW, target 2.914 MW: met with flex 3 at its floors, "
            "flex 1 at 468 W.") in out
    assert ("Measured draw: not read (408 GPU node(s): host key not in known_hosts, not contacted)") in out


def test_dry_run_mixed_models_show_per_model_caps():
    result = run("curtail", "start", str(REPO / "inventories" / "ga-dalton" / "site.yaml"), "--program", "utility-dr",
                 "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "l40s 350 → 100 ×240" in result.stdout and "rtx-4090 400 → 150 ×160" in result.stdout


def test_dry_run_with_measured_draw(tmp_path):
    measured = tmp_path / "draw.json"
    measured.write_text(json.dumps({"c04-r01-n01": [650, 600, 300, 342, 343, 0, 700, 664.25]}))
    data = dry_json("--program", "ers-10", "--measured", str(measured))
    # Against 342 W: 308 + 258 + 0 + 0 + 1 + 0 + 358 + 322.25 W, in kW to the watt.
    assert data["measured"] == {"nodes": 1, "gpus": 8, "savings_kw": 1.247}
    out = run("curtail", "start", TX, "--program", "ers-10", "--dry-run", "--measured", str(measured)).stdout
    assert ("What the cut should save against measured draw: 1.247 kW, the draw above the new caps of the "
            "8 GPUs measured on 1 of 408 GPU nodes.") in out


@pytest.mark.parametrize(("args", "message"), [
    (("start",), "give one of --to MW, --by MW, --by P% or --program NAME"),
    (("start", "--to", "3", "--by", "2"), "give one of --to MW, --by MW, --by P% or --program NAME "
                                          "(got --to and --by)"),
    (("start", "--to", "3", "--program", "4cp", "--dry-run"), "give one of --to MW, --by MW, --by P% or "
                                                              "--program NAME (got --to and --program)"),
    (("start", "--to", "x", "--dry-run"), "--to: 'x' is not a number of MW such as 9.5"),
    (("start", "--to", "0", "--dry-run"), "--to: must be greater than 0 (got 0)"),
    (("start", "--by", "1e3", "--dry-run"), "--by: '1e3' is not a number of MW such as 2 or a percentage "
                                            "such as 20%"),
    (("start", "--by", "-5%", "--dry-run"), "--by: '-5%' is not a number of MW such as 2 or a percentage "
                                            "such as 20%"),
    (("start", "--by", "100%", "--dry-run"), "--by: a percentage must be below 100% (got 100%)"),
    (("start", "--by", "5", "--dry-run"), "by 5 MW is more than the planned facility draw of 3.885 MW"),
    (("start", "--to", "1", "--dry-run"), "site tx-odessa cannot reach 1.000 MW by GPU caps (to 1 MW): the "
                                          "lowest facility draw caps can reach is 2.142 MW"),
    (("start", "--program", "ers10", "--dry-run"), "site tx-odessa has no curtailment program 'ers10' (did "
                                                   "you mean 'ers-10'?)"),
    (("start", "--to", "3", "--for", "5x", "--dry-run"), "--for: '5x' is not a duration such as 90s, 15m, "
                                                         "3h or 1h30m"),
    (("start", "--to", "3", "--for", "0s", "--dry-run"), "--for: '0s' must be longer than 0"),
    (("start", "--program", "ers-10", "--for", "9h", "--dry-run"), "--for 9h is longer than program "
                                                                   "ers-10's max_hours (8)"),
    (("start", "--to", "3", "--measured", "x.json"), "--measured goes with --dry-run"),
    (("release", "--ramp", "soon"), "--ramp: 'soon' is not a duration such as 90s, 15m, 3h or 1h30m"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    result = run("curtail", args[0], TX, *args[1:])
    assert (result.exit_code, result.stderr, result.stdout) == (2, f"ecohash: {message}\n", "")


# Each option lives only on the subcommand it means something to: elsewhere click refuses it.
@pytest.mark.parametrize(("subcommand", "option"), [
    ("release", "--for"), ("release", "--to"), ("status", "--dry-run"), ("status", "--ramp"),
    ("start", "--ramp"),
])
def test_an_option_of_another_subcommand_is_a_usage_error(subcommand, option):
    result = run("curtail", subcommand, TX, option, "1h")
    assert result.exit_code == 2
    assert f"Error: No such option '{option}'" in result.stderr


@pytest.mark.parametrize(("legacy", "new"), [
    (("--program", "ers-10"), "`ecohash curtail start SITE --to | --by | --program ...`"),
    (("--to", "3.5"), "`ecohash curtail start SITE --to | --by | --program ...`"),
])
def test_the_legacy_spelling_runs_start_and_names_the_new_one(legacy, new):
    result = run("curtail", TX, *legacy, "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ("ecohash: `ecohash curtail SITE --to|--by|--program` is deprecated and goes in "
                             f"the next release; use {new}\n")
    assert result.stdout == run("curtail", "start", TX, *legacy, "--dry-run", "--json").stdout


def test_the_legacy_spelling_with_options_first_is_still_understood():
    result = run("curtail", "--by", "20%", TX, "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["target"] == "by 20%"


def test_the_legacy_spelling_is_refused_by_the_new_checks():
    result = run("curtail", TX, "--release", "--for", "1h")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == ("ecohash: `ecohash curtail SITE --release` is deprecated and goes "
                                             "in the next release; use `ecohash curtail release SITE`")
    assert "Error: No such option '--for'" in result.stderr
    both = run("curtail", TX, "--release", "--status")
    assert (both.exit_code, both.stderr) == (2, "ecohash: give one of --release or --status, not both (now: "
                                                "`ecohash curtail release SITE`, `ecohash curtail status SITE`)\n")


def test_bad_measured_file_names_its_line(tmp_path):
    bad = tmp_path / "draw.json"
    bad.write_text('{"c04-r01-n01": [650,\n')
    result = run("curtail", "start", TX, "--to", "3.5", "--dry-run", "--measured", str(bad))
    assert (result.exit_code, result.stderr) == (2, f"{bad}:2: not JSON: Expecting value\n")
    bad.write_text('{"c04-r01-n01": [650, true]}')
    result = run("curtail", "start", TX, "--to", "3.5", "--dry-run", "--measured", str(bad))
    assert result.stderr == (f"ecohash: {bad}: node 'c04-r01-n01': measured draw must be a list of watts "
                             ">= 0, one per GPU\n")
    bad.write_text('{"nope": [650]}')
    result = run("curtail", "start", TX, "--to", "3.5", "--dry-run", "--measured", str(bad))
    assert result.stderr == "ecohash: measured draw names 'nope', which is not a GPU node of the site\n"


def test_an_invalid_site_is_refused_at_its_line(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text((REPO / "inventories" / "tx-odessa" / "site.yaml").read_text().replace(
        "flex: 3 ", "flex: 5 "))
    result = run("curtail", "start", str(site), "--to", "3", "--dry-run")
    assert result.exit_code == 2
    assert result.stderr.endswith("spec.containers[3].flex: must be less than or equal to 3 (got 5)\n")
    assert len(result.stderr.splitlines()) == 1


@pytest.fixture
def simulated(monkeypatch, tmp_path):
    """tx-odessa's GPU nodes simulated in process (tests/grid/simnodes.py) instead of SSH."""
    from ecohash.budget import compile_budget
    from ecohash.grid import actuate
    from ecohash.inventory import load_site
    from tests.grid.simnodes import SimulatedNodes

    monkeypatch.setenv("ECOHASH_STATE_DIR", str(tmp_path / "state"))
    nodes = SimulatedNodes.of(compile_budget(load_site(TX)))
    monkeypatch.setattr(actuate, "ssh_link", lambda site, names, timeout_s=10: nodes)
    return nodes


def test_a_real_curtailment_caps_every_gpu_and_says_how_fast(simulated):
    result = run("curtail", "start", TX, "--program", "4cp", "--for", "2h", "--settle", "5s")
    assert result.exit_code == 0, result.output
    assert {sim.limit_w for name, sim in simulated.nodes.items() if name.startswith("c04")} == {200}
    assert {sim.override["cap_w"] for name, sim in simulated.nodes.items() if name.startswith("c01")} == {468}
    lines = result.stdout.splitlines()
    assert lines[0].startswith("every reachable GPU enforces its cap, ")
    assert lines[1].startswith("curtailment event ") and "program 4cp (by 25%)" in lines[1]
    assert any(line.startswith("caps verified on every reachable GPU ") for line in lines)
    assert lines[-1].startswith("event report: ") and lines[-1].endswith("report.html")


def test_status_and_release_as_json(simulated):
    assert run("curtail", "start", TX, "--by", "10%", "--settle", "2s").exit_code == 0
    status = json.loads(run("curtail", "status", TX, "--json").stdout)
    assert status["state"] == "active" and status["measured"]["below_target"] is True
    assert len(status["measured"]["nodes"]) == len(simulated.nodes)
    released = run("curtail", "release", TX, "--json")
    assert released.exit_code == 0, released.output
    data = json.loads(released.stdout)
    assert data["ok"] is True and data["event"]["status"] == "released"
    assert all(sim.override is None for sim in simulated.nodes.values())
    again = run("curtail", "release", TX)
    assert (again.exit_code, again.stdout) == (0, "site tx-odessa has no curtailment event to release\n")


def test_a_gpu_that_does_not_enforce_its_cap_exits_1_naming_it(simulated):
    simulated.nodes["c04-r01-n07"].ignores_caps = True
    result = run("curtail", "start", TX, "--by", "10%", "--settle", "1s")
    assert result.exit_code == 1
    assert "c04-r01-n07: FAILED: not at " in result.stdout


def test_settle_goes_with_a_real_curtailment_only():
    result = run("curtail", "start", TX, "--to", "3", "--dry-run", "--settle", "5s")
    assert (result.exit_code, result.stderr) == (2, "ecohash: --settle goes with a real curtailment, not --dry-run\n")


def test_legacy_status_and_release_run_the_new_subcommands(simulated):
    assert run("curtail", "start", TX, "--by", "10%", "--settle", "2s").exit_code == 0
    status = run("curtail", TX, "--status", "--json")
    assert status.stderr == ("ecohash: `ecohash curtail SITE --status` is deprecated and goes in the next "
                             "release; use `ecohash curtail status SITE`\n")
    assert json.loads(status.stdout)["state"] == "active"
    released = run("curtail", TX, "--release")
    assert released.exit_code == 0, released.output
    assert all(sim.override is None for sim in simulated.nodes.values())
