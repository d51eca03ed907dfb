"""When failures stop a rollout: over the whole run, and over the nodes waves have tried."""

from __future__ import annotations

from typing import Any

from ecohash.rollout.fingerprint import Fingerprint
from ecohash.rollout.provision import (
    NOT_RUN,
    SKIPPED,
    NodeOutcome,
    ProvisionRequest,
    Rollout,
    over_failure_limit,
)
from ecohash.rollout.state import FAILED, PASSED, UNREACHABLE


def rollout(max_fail_pct: int, *outcomes: tuple[str, int | None]) -> Rollout:
    """Nodes as (status, wave); the site is not needed when the limit is given."""
    request = ProvisionRequest(site=None, max_fail_pct=max_fail_pct)  # type: ignore[arg-type]
    nodes = {f"n{i}": NodeOutcome(f"n{i}", Fingerprint("f", {}), status, wave=wave)
             for i, (status, wave) in enumerate(outcomes)}
    none: Any = None
    return Rollout(request, none, none, none, none, nodes, none)


def test_a_failing_canary_stops_a_large_rollout() -> None:
    # 1 of 2 canary nodes failed: 50% of the nodes tried, though 1% of the run.
    run = rollout(25, (FAILED, 1), (PASSED, 1), *[(NOT_RUN, None)] * 98)
    assert over_failure_limit(run, "canary")
    assert run.outcome == "stopped"
    assert run.message is not None and "1 of 2 nodes tried failed (50% > --max-fail-pct 25)" in run.message


def test_failures_within_the_limit_go_on() -> None:
    run = rollout(25, (FAILED, 2), (PASSED, 1), (PASSED, 1), (PASSED, 2), *[(NOT_RUN, None)] * 6)
    assert not over_failure_limit(run, "wave 2")
    assert run.outcome == "completed" and run.message is None


def test_preflight_failures_count_against_the_run() -> None:
    run = rollout(25, *[(UNREACHABLE, None)] * 3, *[(NOT_RUN, None)] * 7)
    assert over_failure_limit(run, "preflight")
    assert "3 of 10 nodes of this run failed" in (run.message or "")


def test_skipped_nodes_are_not_part_of_the_run() -> None:
    # One failure among two provisioned nodes is 50%, however many were already standard.
    run = rollout(40, (FAILED, 1), (PASSED, 1), *[(SKIPPED, None)] * 50)
    assert over_failure_limit(run, "canary")


def test_zero_tolerates_nothing_and_one_hundred_everything() -> None:
    assert over_failure_limit(rollout(0, (FAILED, 1), *[(PASSED, 1)] * 99), "canary")
    assert not over_failure_limit(rollout(100, *[(FAILED, 1)] * 10), "canary")
