"""The fleet summary: sheddable power by the curtailment rule's floors, rollout and drift from
this machine's state (never assumed), the lab marked, and a bad site never stopping the rest."""

from __future__ import annotations

import json
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest

from ecohash.ansible.runner import new_run_directory
from ecohash.fleet.summary import NO_STATE, fleet_data, site_files, summarise
from ecohash.grid.actuate import CurtailRequest, start_event
from ecohash.grid.events import curtailment_data, load_event
from ecohash.grid.rule import target_for
from ecohash.grid.throughput import curve_for, percent
from ecohash.inventory import load_site
from ecohash.lab.layout import inventory_file
from ecohash.paths import project_root
from ecohash.rollout.drift import DRIFT_SCHEMA, REPORT_FILE_NAME
from ecohash.rollout.state import RolloutState
from tests.fleet.labsite import LAB_NODES, write_lab_site
from tests.grid.simnodes import SimulatedNodes
from tests.grid.sites import SITE as GRID_SITE
from tests.grid.sites import grid_plan
from tests.rollout.recorded import record_rollout

EXAMPLES = project_root() / "inventories"


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ECOHASH_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name / "site.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    return path


def one_site(path: Path) -> dict:
    data = fleet_data(summarise([path]))
    assert data["invalid"] == []
    (region,) = data["regions"]
    (site,) = region["sites"]
    return site


def test_caps_alone_shed_each_flex_tier_down_to_its_floors_at_the_meter(tmp_path: Path) -> None:
    # grid-test: c01 flex 1, c02 flex 3, c03 flex 0; 4 nodes of 8 H100 each, planned at 700 W,
    # floor 200 W, pue 1.25: a tier sheds 4 x 8 x 500 W x 1.25 = 20 kW at the meter.
    site = one_site(write(tmp_path, "grid-test", GRID_SITE))
    meter = site["meter"]
    assert [(t["flex"], t["gpus"], t["shed_mw"]) for t in meter["tiers"]] == [(3, 32, 0.02), (1, 32, 0.02)]
    assert meter["draw_mw"] == 0.114  # 12 x 7,600 W x 1.25
    assert meter["budget_mw"] == 1.0
    assert (meter["shed_mw"], meter["floor_mw"]) == (0.04, 0.074)
    # What a tier's GPUs keep is the catalog's curve at 200 of 700 W, over the curve at plan.
    curve = curve_for("h100-sxm")
    kept = curve.at(Fraction(200, 700)) / curve.at(Fraction(1))
    assert [t["throughput_kept_pct"] for t in meter["tiers"]] == [float(percent(kept))] * 2
    # The flex 0 GPUs keep all of theirs: the site keeps (2 x kept + 1) / 3.
    assert meter["throughput_kept_pct"] == float(percent((2 * kept + 1) / 3))
    assert meter["throughput_estimate"] is curve.estimate


def test_a_site_without_state_here_says_so_and_one_with_state_counts_its_current_nodes(
        tmp_path: Path) -> None:
    recorded = load_site(EXAMPLES / "nd-williston" / "site.yaml")
    record_rollout(recorded)
    data = fleet_data(summarise([EXAMPLES / "nd-williston" / "site.yaml", EXAMPLES / "tx-odessa" / "site.yaml"]))
    sites = {site["site"]: site for region in data["regions"] for site in region["sites"]}
    assert sites["tx-odessa"]["rollout"] is None and sites["tx-odessa"]["drift"] is None
    rollout = sites["nd-williston"]["rollout"]
    assert rollout["nodes"] == rollout["current"] == len(recorded.nodes) == 57
    assert rollout["current_pct"] == 100.0
    assert rollout["last_provision"]["run"] == "run-1"
    assert rollout["last_provision"]["outcome"] == "completed"
    assert data["totals"]["rollout"] == {"sites_with_state": 1, "sites_without_state": 1, "nodes": 57,
                                         "current": 57, "current_pct": 100.0}
    from ecohash.fleet.render import rollout_text

    assert rollout_text(sites["tx-odessa"]["rollout"]) == NO_STATE


def test_a_node_whose_inputs_changed_since_its_rollout_is_not_current(tmp_path: Path) -> None:
    text = (EXAMPLES / "nd-williston" / "site.yaml").read_text()
    path = write(tmp_path, "nd-williston", text)
    record_rollout(load_site(path))
    # c02's cooling binds: lowering it lowers the cap of its 40 nodes, so they are redone.
    path.write_text(text.replace("cooling_kw: 180", "cooling_kw: 170", 1))
    rollout = one_site(path)["rollout"]
    assert (rollout["nodes"], rollout["current"]) == (57, 17)
    assert rollout["counts"] == {"current": 17, "outdated": 40}


def test_the_last_drift_check_is_the_newest_report_here(tmp_path: Path) -> None:
    path = EXAMPLES / "nd-williston" / "site.yaml"
    for drifted in (True, False):
        directory = new_run_directory("nd-williston", "drift")
        if drifted:
            directory = directory.rename(directory.with_name("20000101T000000Z-drift"))
        (directory / REPORT_FILE_NAME).write_text(json.dumps({
            "schema": DRIFT_SCHEMA, "site": "nd-williston", "run": directory.name, "finished": "t",
            "drifted": drifted, "counts": {"drifted": int(drifted), "in-standard": 57 - int(drifted),
                                           "unreachable": 0}, "nodes": [], "stack": {}}))
    drift = one_site(path)["drift"]
    assert drift["drifted"] is False and drift["counts"]["in-standard"] == 57


def test_the_curtailment_in_force_is_the_event_s_plan_view(tmp_path: Path) -> None:
    plan = grid_plan()
    start_event(CurtailRequest(plan.site, plan, target_for(plan, by_pct=Decimal(10)), settle_s=2,
                               interval_s=0.05), link=SimulatedNodes.of(plan))
    path = write(tmp_path, "grid-test", GRID_SITE)
    data = fleet_data(summarise([path]))
    event = load_event("grid-test")
    assert event is not None
    assert data["regions"][0]["sites"][0]["curtailment"] == curtailment_data(event)
    assert data["totals"]["curtailments"] == ["grid-test"]


def test_a_broken_infeasible_or_repeated_site_is_one_file_line_error_and_the_rest_are_summed(
        tmp_path: Path) -> None:
    good = (EXAMPLES / "nd-williston" / "site.yaml").read_text()
    write(tmp_path, "a-good", good)
    write(tmp_path, "b-broken", good.replace("pue: 1.15", "pue: lots", 1))
    write(tmp_path, "c-infeasible", good.replace("grid_mw: 2 ", "grid_mw: 0.1 ", 1))
    write(tmp_path, "d-same-name", good)
    data = fleet_data(summarise(site_files(tmp_path)))
    assert [site["file"] for region in data["regions"] for site in region["sites"]] == [
        str(tmp_path / "a-good" / "site.yaml")]
    errors = [bad["error"] for bad in data["invalid"]]
    assert len(errors) == 3
    pue_line = good.splitlines().index("    pue: 1.15             # free-air cooling, fans only") + 1
    assert errors[0].startswith(f"{tmp_path / 'b-broken' / 'site.yaml'}:{pue_line}: ")
    assert "pue" in errors[0]
    assert errors[1].startswith(f"{tmp_path / 'c-infeasible' / 'site.yaml'}:")
    assert "infeasible" in errors[1]
    name_line = good.splitlines().index("  name: nd-williston") + 1
    assert errors[2] == (f"{tmp_path / 'd-same-name' / 'site.yaml'}:{name_line}: site name 'nd-williston' "
                         f"is also the name of {tmp_path / 'a-good' / 'site.yaml'}: a site's name is unique "
                         "across the fleet (its state is kept by name)")
    assert data["totals"]["sites"] == 1 and data["totals"]["nodes"] == 57


def test_without_dir_the_lab_site_lab_up_writes_is_summed_and_marked_simulated(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lab_file = write_lab_site()
    monkeypatch.chdir(tmp_path)  # no ./inventories here: the state directory's is the only root
    monkeypatch.delenv("ECOHASH_INVENTORIES", raising=False)
    data = fleet_data(summarise(site_files(), lab_file=inventory_file()))
    assert data["invalid"] == []
    (region,) = data["regions"]
    (site,) = region["sites"]
    assert (region["region"], site["site"], site["lab"], site["simulated"]) == ("lab", "lab", True, True)
    assert site["file"] == str(lab_file)
    assert site["standard"]["name"].endswith("-lab-simulated")
    assert site["nodes"] == LAB_NODES


def test_a_damaged_rollout_state_lists_the_site_with_the_file_at_fault(state: Path) -> None:
    path = EXAMPLES / "nd-williston" / "site.yaml"
    record_rollout(load_site(path))
    state_file = RolloutState.file_for("nd-williston")
    state_file.write_text("{\n  not json\n")
    data = fleet_data(summarise([path, EXAMPLES / "tx-odessa" / "site.yaml"]))
    (bad,) = data["invalid"]
    assert bad["file"] == str(path)
    assert bad["error"].startswith(f"{state_file}:2: not a rollout state: invalid JSON")
    assert [site["site"] for region in data["regions"] for site in region["sites"]] == ["tx-odessa"]


def test_sites_read_by_forked_workers_sum_as_when_read_here(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from ecohash.fleet import summary

    files = [*site_files(EXAMPLES), write(tmp_path, "broken", GRID_SITE.replace("pue: 1.25", "pue: x"))]
    here = fleet_data(summarise(files))
    monkeypatch.setattr(summary, "PARALLEL_BYTES_PER_WORKER", 1)  # a worker per core from the first byte
    monkeypatch.setattr(summary.os, "cpu_count", lambda: 2)
    forked = fleet_data(summarise(files))
    assert forked == here
    assert len(here["invalid"]) == 1 and here["totals"]["sites"] == 3
