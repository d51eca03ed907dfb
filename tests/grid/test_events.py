"""Event state: kept whole, private, checked on load; expiry read from the end."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from ecohash.errors import InvalidInputError
from ecohash.grid.actuate import CurtailRequest, start_event
from ecohash.grid.events import ACTIVE, EXPIRED, active_event, event_file, load_event, new_event_id
from ecohash.grid.rule import target_for
from tests.grid.simnodes import SimulatedNodes
from tests.grid.sites import grid_plan


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ECOHASH_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


@pytest.fixture
def recorded() -> Path:
    plan = grid_plan()
    start_event(CurtailRequest(plan.site, plan, target_for(plan, by_pct=Decimal(10)), settle_s=2, interval_s=0.05),
                link=SimulatedNodes.of(plan))
    return event_file("grid-test")


def test_no_event_file_means_no_event() -> None:
    assert load_event("grid-test") is None and active_event("grid-test") is None


def test_an_event_round_trips_and_expires_at_its_end(recorded: Path) -> None:
    event = load_event("grid-test")
    assert event is not None and event.state() == ACTIVE and event.end is None
    raw = json.loads(recorded.read_text())
    raw["end"] = raw["start"] + 60
    recorded.write_text(json.dumps(raw))
    event = load_event("grid-test")
    assert event.state(now=raw["start"] + 59) == ACTIVE
    assert event.state(now=raw["start"] + 60) == EXPIRED
    assert active_event("grid-test", now=raw["start"] + 61) is None
    assert "until " in event.summary() and event.summary().startswith(f"curtailment event {event.id} ")


@pytest.mark.parametrize(("edit", "message"), [
    (lambda raw: "{not json", ":1: not a curtailment event: invalid JSON (Expecting property name enclosed in "
                              "double quotes, column 2)"),
    (lambda raw: json.dumps({**raw, "schema": 7}), ": curtailment event schema 7; this ecohash reads schema 1"),
    (lambda raw: json.dumps({**raw, "start": "yesterday"}), ": not a curtailment event: start: input should be a "
                                                             "valid number"),
    (lambda raw: json.dumps({**raw, "extra": 1}), ": not a curtailment event: extra: unexpected keyword argument"),
    (lambda raw: json.dumps({**raw, "site": "other"}), ": the curtailment event of site 'other', not of site "
                                                        "'grid-test'"),
], ids=["json", "schema", "type", "unknown key", "site"])
def test_a_damaged_or_foreign_event_file_is_named_in_one_line(recorded: Path, edit, message: str) -> None:
    raw = json.loads(recorded.read_text())
    recorded.write_text(edit(raw))
    with pytest.raises(InvalidInputError) as refused:
        load_event("grid-test")
    assert str(refused.value) == f"{recorded}{message}"


def test_event_ids_are_what_the_node_script_accepts() -> None:
    import re

    ids = {new_event_id(1_700_000_000.0) for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"[a-z0-9-]{1,64}", event_id) for event_id in ids)
    assert next(iter(ids)).startswith("20231114-221320-")


def test_status_and_plan_show_the_event_in_one_line_until_it_is_released(tmp_path: Path, recorded: Path) -> None:
    from click.testing import CliRunner

    from ecohash.commands.main import cli
    from tests.grid.sites import SITE

    site_file = tmp_path / "grid-test.yaml"
    site_file.write_text(SITE)
    event = load_event("grid-test")
    line = event.summary()
    assert line.startswith(f"curtailment event {event.id} active: by 10% (target 0.1026 MW), since ")
    assert line.endswith("until released; 4 of 12 GPU node(s) below their planned cap")
    for command in (["status", str(site_file)], ["plan", str(site_file)]):
        result = CliRunner().invoke(cli, command)
        assert result.exit_code == 0, result.output
        assert line in result.output
    plan = json.loads(CliRunner().invoke(cli, ["plan", str(site_file), "--json"]).output)
    assert plan["curtailment"]["event"] == event.id and len(plan["curtailment"]["gpu_cap_w_by_node"]) == 4
    status = json.loads(CliRunner().invoke(cli, ["status", str(site_file), "--json"]).output)
    # The same object as plan's: one shape for the event in force wherever it is shown.
    assert status["curtailment"] == plan["curtailment"]
    raw = json.loads(recorded.read_text())
    recorded.write_text(json.dumps({**raw, "status": "released"}))
    assert "curtailment" not in CliRunner().invoke(cli, ["plan", str(site_file)]).output
    assert "curtailment" not in json.loads(CliRunner().invoke(cli, ["plan", str(site_file), "--json"]).output)
