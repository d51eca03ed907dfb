"""Curtailment for real, on simulated nodes: caps applied and verified, dead nodes held, release ramps.

The nodes are tests/grid/simnodes.py's (ecohash-gpu-power's behaviour in process); the
rule is the real one, so every expected cap is the rule's own answer for the same input.
"""

from __future__ import annotations

import stat
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from ecohash.grid import events
from ecohash.grid.actuate import CurtailRequest, event_status, release_event, release_steps, start_event
from ecohash.grid.events import ENFORCED, FAILED, HELD, RELEASED, RESTORED, event_dir, event_file, load_event
from ecohash.grid.rule import CurtailmentInfeasibleError, find_program, program_target, solve, target_for
from ecohash.locks import SiteLockedError, site_lock
from tests.grid.simnodes import SimulatedNodes
from tests.grid.sites import grid_plan

C02 = [f"c02-r01-n{i:02d}" for i in range(1, 5)]


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ECOHASH_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


class Said:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def say(self, text: str) -> None:
        self.lines.append(text)


def request(plan, pct: str, settle_s: float = 5, **options) -> CurtailRequest:
    return CurtailRequest(plan.site, plan, target_for(plan, by_pct=Decimal(pct)), settle_s=settle_s,
                          interval_s=0.05, **options)


def test_every_gpu_gets_the_rule_s_cap_and_the_event_is_recorded_verified() -> None:
    plan = grid_plan()
    nodes = SimulatedNodes.of(plan)
    target = target_for(plan, by_pct=Decimal(20))
    outcome = start_event(request(plan, "20"), link=nodes)
    expected = solve(plan, target).caps_w
    assert outcome.ok
    assert {name: sim.limit_w for name, sim in nodes.nodes.items()} == expected
    assert {name: sim.override["cap_w"] for name, sim in nodes.nodes.items()} == expected
    # Every node carries the event: untouched ones (flex 0) at their planned cap.
    assert {sim.override["event"] for sim in nodes.nodes.values()} == {outcome.event.id}
    assert {sim.override["until"] for sim in nodes.nodes.values()} == {0}  # until released
    event = load_event("grid-test")
    assert event is not None and event.id == outcome.event.id
    assert {name: node.cap_w for name, node in event.nodes.items()} == expected
    assert {node.status for node in event.nodes.values()} == {ENFORCED}
    assert event.verified_s is not None and event.below_target_s is not None
    assert event.verified_s <= event.below_target_s < 5
    assert event.it_draw_w == solve(plan, target).it_draw_w <= target.it_w


def test_event_files_are_private_and_hold_the_samples() -> None:
    plan = grid_plan()
    outcome = start_event(request(plan, "20"), link=SimulatedNodes.of(plan))
    directory = event_dir("grid-test", outcome.event.id)
    for path in [event_file("grid-test"), directory / "event.json", directory / "samples.jsonl",
                 directory / "report.json", directory / "report.html"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for path in [directory, directory.parent, events.site_dir("grid-test")]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    assert len((directory / "samples.jsonl").read_text().splitlines()) >= 2  # read-backs + a sample


def test_an_unreachable_node_is_held_at_its_plan_and_the_rest_of_its_tier_goes_lower() -> None:
    plan = grid_plan()
    nodes = SimulatedNodes.of(plan)
    dead = C02[0]
    nodes.unreachable.add(dead)
    said = Said()
    target = target_for(plan, by_pct=Decimal(10))
    outcome = start_event(request(plan, "10"), display=said, link=nodes)
    held = solve(plan, target, {dead: 700})
    assert held.caps_w[C02[1]] < solve(plan, target).caps_w[C02[1]]  # lower than without the dead node
    assert outcome.ok  # every node that answered enforces its cap
    assert {name: sim.limit_w for name, sim in nodes.nodes.items() if name != dead} == {
        name: cap for name, cap in held.caps_w.items() if name != dead}
    event = outcome.event
    assert event.nodes[dead].status == HELD and event.nodes[dead].cap_w == 700
    assert event.held == {dead: "unreachable: connection timed out after 10 s; held at 700 W per GPU"}
    assert "unreachable: connection timed out" in event.nodes[dead].reason
    assert any(line.startswith(f"{dead}: held at 700 W per GPU") for line in outcome.lines)
    assert any("re-solved with c02-r01-n01 held" in line for line in said.lines)
    # Only the nodes whose cap changed were sent it again.
    curtails = [node for node, arguments in nodes.calls if arguments[0] == "curtail"]
    assert sorted(curtails[len(nodes.nodes):]) == C02[1:]


def test_the_settle_limit_runs_from_the_caps_verified_not_from_the_command() -> None:
    plan = grid_plan()
    nodes = SimulatedNodes.of(plan)
    nodes.unreachable.add(C02[0])
    nodes.timeout_s = 0.5  # longer than the settle limit: the draw is still watched after it
    outcome = start_event(request(plan, "10", settle_s=0.3), link=nodes)
    event = outcome.event
    assert event.verified_s >= 0.5
    assert event.below_target_s is not None and event.below_target_s >= event.verified_s


def test_a_held_node_is_held_at_its_last_read_back_not_its_plan() -> None:
    plan = grid_plan()
    nodes = SimulatedNodes.of(plan)
    first = start_event(request(plan, "10"), link=nodes)
    dead = C02[0]
    last_cap = first.event.nodes[dead].cap_w
    assert last_cap < 700
    nodes.unreachable.add(dead)
    said = Said()
    second = start_event(request(plan, "20"), display=said, link=nodes)
    assert second.event.nodes[dead].cap_w == last_cap
    assert second.event.replaced == first.event.id
    assert any(f"replaces event {first.event.id}" in line for line in said.lines)
    replaced = events.load_event  # the site's current event is the new one
    assert replaced("grid-test").id == second.event.id


def test_a_replaced_event_says_so_in_its_own_record() -> None:
    plan = grid_plan()
    nodes = SimulatedNodes.of(plan)
    first = start_event(request(plan, "10"), link=nodes)
    second = start_event(request(plan, "20"), link=nodes)
    import json

    record = json.loads((event_dir("grid-test", first.event.id) / "event.json").read_text())
    assert record["status"] == RELEASED
    assert record["problems"] == [f"replaced by event {second.event.id} (by 20%)"]


def test_a_node_that_answers_but_does_not_enforce_its_cap_fails_the_command_by_name() -> None:
    plan = grid_plan()
    nodes = SimulatedNodes.of(plan)
    stuck = C02[2]
    nodes.nodes[stuck].ignores_caps = True
    outcome = start_event(request(plan, "10"), link=nodes)
    assert not outcome.ok
    node = outcome.event.nodes[stuck]
    assert node.status == FAILED
    assert node.reason.startswith(f"not at {solve(plan, target_for(plan, by_pct=Decimal(10))).caps_w[stuck]} W: "
                                  "GPU 0 enforces 700 W, GPU 1 enforces 700 W")
    assert any(line.startswith(f"{stuck}: FAILED: not at") for line in outcome.lines)
    assert outcome.event.verified_s is None
    # It is counted at what it enforces: the rest of its tier made up for it.
    assert node.cap_w == 700
    others = [nodes.nodes[name].limit_w for name in C02 if name != stuck]
    assert max(others) < solve(plan, target_for(plan, by_pct=Decimal(10))).caps_w[C02[0]]


def test_an_unreachable_target_touches_no_node() -> None:
    plan = grid_plan()
    nodes = SimulatedNodes.of(plan)
    with pytest.raises(CurtailmentInfeasibleError):
        start_event(request(plan, "40"), link=nodes)
    assert nodes.calls == []
    assert load_event("grid-test") is None


def test_held_nodes_that_make_the_target_unreachable_fail_the_command_naming_them() -> None:
    plan = grid_plan()
    nodes = SimulatedNodes.of(plan)
    nodes.unreachable.update(C02)  # the flex-3 tier gone: c01 alone cannot make 20%
    outcome = start_event(request(plan, "25", settle_s=0.3), link=nodes)
    assert not outcome.ok
    assert outcome.event.problems[0].startswith(
        "with c02-r01-n01, c02-r01-n02, c02-r01-n03, c02-r01-n04 held at their last known caps: site grid-test "
        "cannot reach")


def test_a_curtailment_waits_for_no_provision_but_refuses_a_second_curtailment() -> None:
    plan = grid_plan()
    with site_lock("grid-test", "provision"):
        assert start_event(request(plan, "10"), link=SimulatedNodes.of(plan)).ok
    with events.curtailment_lock("grid-test", "curtail"), pytest.raises(SiteLockedError) as refused:
        start_event(request(plan, "10"), link=SimulatedNodes.of(plan))
    assert str(refused.value).startswith("curtailment of site grid-test is busy: `ecohash curtail` by ")


def test_the_end_comes_from_for_else_the_program_s_max_hours() -> None:
    plan = grid_plan()
    nodes = SimulatedNodes.of(plan)
    timed = start_event(request(plan, "10", duration=timedelta(minutes=15)), link=nodes)
    assert timed.event.end == pytest.approx(timed.event.start + 900)
    assert {sim.override["until"] for sim in nodes.nodes.values()} == {int(timed.event.end)}
    program = find_program(plan.site, "ers-10")
    by_program = start_event(CurtailRequest(plan.site, plan, program_target(plan, program), program=program,
                                            settle_s=5, interval_s=0.05), link=nodes)
    assert by_program.event.end == pytest.approx(by_program.event.start + 3600)
    assert by_program.event.program == "ers-10" and by_program.event.restore_minutes == 2


# --- Release ------------------------------------------------------------------------------------


def test_release_steps_go_flex_1_first_and_flex_3_last_spread_over_the_ramp() -> None:
    plan = grid_plan()
    event = start_event(request(plan, "20"), link=SimulatedNodes.of(plan)).event
    # by 20%: flex 3 (c02) at its floors, flex 1 (c01) binds; flex 0 (c03) untouched.
    steps = release_steps(event, 60)
    assert [step.at_s for step in steps] == [0, 60]
    assert sorted(steps[0].arguments) == [f"c01-r01-n{i:02d}" for i in range(1, 5)]
    assert set(map(tuple, steps[0].arguments.values())) == {("release", "--cap", "700")}
    assert steps[1].arguments == {name: ["release"] for name in event.nodes}
    assert set(steps[1].caps_w.values()) == {700}


def test_one_tier_below_plan_is_released_halfway_then_in_full_and_no_ramp_is_one_step() -> None:
    plan = grid_plan()
    event = start_event(request(plan, "10"), link=SimulatedNodes.of(plan)).event
    cap = event.nodes[C02[0]].cap_w
    steps = release_steps(event, 30)
    assert [step.at_s for step in steps] == [0, 30]
    assert steps[0].caps_w == dict.fromkeys(C02, (cap + 700) // 2)
    assert len(release_steps(event, 0)) == 1
    assert release_steps(event, 0)[0].arguments == {name: ["release"] for name in event.nodes}


def test_release_with_a_ramp_raises_caps_tier_by_tier_and_ends_at_plan() -> None:
    plan = grid_plan()
    nodes = SimulatedNodes.of(plan)
    start_event(request(plan, "20"), link=nodes)
    before = len(nodes.calls)
    said = Said()
    outcome = release_event(plan.site, plan, timedelta(seconds=1), display=said, link=nodes, interval_s=0.05)
    assert outcome is not None and outcome.ok
    changes = [(node, arguments) for node, arguments in nodes.calls[before:] if arguments[0] != "read"]
    first_full = next(i for i, (_, arguments) in enumerate(changes) if arguments == ("release",))
    assert {node for node, _ in changes[:first_full]} == {f"c01-r01-n{i:02d}" for i in range(1, 5)}
    assert {node for node, _ in changes[first_full:]} == set(nodes.nodes)
    assert {sim.limit_w for sim in nodes.nodes.values()} == {700}
    assert all(sim.override is None for sim in nodes.nodes.values())
    event = load_event("grid-test")
    assert event.status == RELEASED and {n.status for n in event.nodes.values()} == {RESTORED}
    # The record keeps what the event asked; the read-back says where the node is now.
    assert event.nodes["c01-r01-n01"].cap_w < 700 and event.nodes["c01-r01-n01"].enforced_w == [700.0] * 8
    assert 1 <= event.released_s < 5
    assert [line.split(" at ")[0] for line in said.lines] == ["release step 1/2", "release step 2/2"]
    assert release_event(plan.site, plan, link=nodes) is None  # nothing left to release


def test_a_node_that_misses_the_release_keeps_the_event_active_and_is_named() -> None:
    plan = grid_plan()
    nodes = SimulatedNodes.of(plan)
    start_event(request(plan, "10"), link=nodes)
    nodes.unreachable.add(C02[3])
    outcome = release_event(plan.site, plan, link=nodes)
    assert outcome is not None and not outcome.ok
    assert outcome.lines[0].startswith(f"{C02[3]}: not released: unreachable")
    assert load_event("grid-test").status == "active"
    nodes.unreachable.clear()
    again = release_event(plan.site, plan, link=nodes)
    assert again is not None and again.ok and load_event("grid-test").status == RELEASED
    assert load_event("grid-test").held == {}  # it answered the curtail; only the release missed it


def test_status_reads_every_node_once_and_compares_with_the_target() -> None:
    plan = grid_plan()
    nodes = SimulatedNodes.of(plan)
    outcome = start_event(request(plan, "20"), link=nodes)
    samples = event_dir("grid-test", outcome.event.id) / "samples.jsonl"
    lines_before = len(samples.read_text().splitlines())
    nodes.calls.clear()
    data = event_status(plan.site, plan, link=nodes)
    assert sorted(node for node, _ in nodes.calls) == sorted(nodes.nodes)
    assert data["state"] == "active" and data["event"]["id"] == outcome.event.id
    # 12 hosts x 2000 W + the GPUs' simulated draw (flat out: their caps).
    expected = 24000 + sum(8 * sim.limit_w for sim in nodes.nodes.values())
    assert data["measured"]["it_draw_w"] == expected
    assert data["measured"]["below_target"] is True
    assert len(samples.read_text().splitlines()) == lines_before + 1
