"""Rollout state keeps every result it was given, and refuses a file it did not write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ecohash.errors import InvalidInputError
from ecohash.rollout.state import FAILED, PASSED, NodeRecord, RolloutState


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ECOHASH_STATE_DIR", str(tmp_path))
    return tmp_path


def record(status: str, fingerprint: str = "f1", run: str = "run-1") -> NodeRecord:
    return NodeRecord(fingerprint=fingerprint, components={"vars": "v"}, status=status, reason=None,
                      cap_w=350, time="2026-11-21T10:00:00Z", run=run)


def test_state_round_trips_and_a_node_is_current_only_when_passed_at_the_same_fingerprint() -> None:
    state = RolloutState("lab")
    state.record("n1", record(PASSED))
    state.record("n2", record(FAILED))
    state.save()
    loaded = RolloutState.load("lab")
    assert loaded.nodes == state.nodes
    assert loaded.is_current("n1", "f1")
    assert not loaded.is_current("n1", "f2")
    assert not loaded.is_current("n2", "f1")
    assert not loaded.is_current("n3", "f1")


def test_a_failure_after_a_pass_keeps_the_last_pass() -> None:
    state = RolloutState("lab")
    state.record("n1", record(PASSED, "f1", "run-1"))
    state.record("n1", record(FAILED, "f2", "run-2"))
    assert state.nodes["n1"].status == FAILED
    assert state.nodes["n1"].last_passed == {"fingerprint": "f1", "time": "2026-11-21T10:00:00Z",
                                             "run": "run-1"}


def test_saving_is_atomic_and_leaves_no_temporary_files(state_dir: Path) -> None:
    state = RolloutState("lab")
    state.record("n1", record(PASSED))
    state.save()
    state.record("n2", record(PASSED))
    state.save()
    directory = RolloutState.file_for("lab").parent
    assert [p.name for p in directory.iterdir()] == ["state.json"]
    assert sorted(json.loads(RolloutState.file_for("lab").read_text())["nodes"]) == ["n1", "n2"]
    assert RolloutState.file_for("lab").stat().st_mode & 0o077 == 0


GOOD_NODE = {"fingerprint": "f1", "components": {"vars": "v"}, "status": "passed", "reason": None,
             "cap_w": 350, "time": "2026-11-21T10:00:00Z", "run": "run-1"}


def state_text(**changes: object) -> str:
    return json.dumps({"schema": 1, "site": "lab", "nodes": {"n1": GOOD_NODE}, "runs": [], "site_vars": {},
                       "stack": None, **changes})


# A damaged or foreign state file, and the one line that names it and what is wrong.
DAMAGED = [
    ("{not json", "{path}:1: not a rollout state: invalid JSON (Expecting property name enclosed in "
                  "double quotes, column 2)"),
    ('{"schema": 1,\n "site": "lab",\n}\n', "{path}:3: not a rollout state: invalid JSON (Expecting "
                                            "property name enclosed in double quotes, column 1)"),
    ("\udcff", "{path}: not a rollout state: not UTF-8 text"),
    ("[]", "{path}: not a rollout state: input should be an object (got [])"),
    (state_text(schema=2), "{path}: rollout state schema 2; this ecohash reads schema 1"),
    (state_text(site="tx-odessa"), "{path}: the rollout state of site 'tx-odessa', not of site 'lab'"),
    (state_text(nodes=[]), "{path}: not a rollout state: nodes: input should be an object (got [])"),
    (state_text(nodes={"n1": {**GOOD_NODE, "status": 5}}),
     "{path}: not a rollout state: nodes.n1.status: input should be a valid string (got 5)"),
    (state_text(nodes={"n1": {**GOOD_NODE, "cap_w": "350"}}),
     "{path}: not a rollout state: nodes.n1.cap_w: input should be a valid integer (got '350')"),
    (state_text(nodes={"n1": {**GOOD_NODE, "colour": "red"}}),
     "{path}: not a rollout state: nodes.n1.colour: unexpected keyword argument (got 'red')"),
    (state_text(nodes={"n1": {k: v for k, v in GOOD_NODE.items() if k != "run"}}),
     "{path}: not a rollout state: nodes.n1.run: field required"),
    (state_text(stack={"objects": {"a.yaml": 1}}, runs={}),
     "{path}: not a rollout state: runs: input should be a valid array (got {}) (and 5 more problems)"),
]


@pytest.mark.parametrize(("text", "message"), DAMAGED)
def test_a_damaged_or_foreign_state_file_is_one_line_naming_it(text: str, message: str) -> None:
    path = RolloutState.file_for("lab")
    path.parent.mkdir(parents=True)
    path.write_bytes(text.encode(errors="surrogateescape"))
    with pytest.raises(InvalidInputError) as refused:
        RolloutState.load("lab")
    assert str(refused.value) == message.replace("{path}", str(path))


def test_state_without_the_keys_later_versions_added_still_loads() -> None:
    path = RolloutState.file_for("lab")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"schema": 1, "site": "lab", "nodes": {"n1": GOOD_NODE}}))
    loaded = RolloutState.load("lab")
    assert loaded.nodes["n1"] == NodeRecord(**GOOD_NODE)
    assert (loaded.runs, loaded.site_vars, loaded.stack) == ([], {}, None)


def test_run_history_is_updated_by_run_id_and_bounded() -> None:
    state = RolloutState("lab")
    state.record_run({"run": "r1", "outcome": "running"})
    state.record_run({"run": "r1", "outcome": "completed"})
    assert state.runs == [{"run": "r1", "outcome": "completed"}]
    for index in range(150):
        state.record_run({"run": f"x{index}"})
    assert len(state.runs) == 100
    assert state.runs[-1] == {"run": "x149"}
