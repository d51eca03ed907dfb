"""Rollout state as a provision leaves it, written without the lab, for plan's tests."""

from __future__ import annotations

from ecohash.ansible.inventory import planned_inventory
from ecohash.inventory.site import Site
from ecohash.rollout.changes import record_stack
from ecohash.rollout.fingerprint import Fingerprints
from ecohash.rollout.state import PASSED, NodeRecord, RolloutState
from ecohash.stack.render import checked_render


def record_rollout(site: Site, status: str = PASSED, run: str = "run-1") -> RolloutState:
    """Rollout state as a provision that passed every node (and rendered the stack) leaves it."""
    planned = planned_inventory(site)
    fingerprints = Fingerprints(planned.inventory)
    state = RolloutState(site.name)
    for name in planned.inventory.hosts:
        fingerprint = fingerprints.of(name)
        state.record(name, NodeRecord(
            fingerprint=fingerprint.value, components=dict(fingerprint.components), status=status,
            reason=None if status == PASSED else "failed acceptance: gpu_count", cap_w=None,
            time="2026-11-21T10:00:00Z", run=run, vars=dict(fingerprint.node_vars),
            site_vars=fingerprints.site_vars_digest))
    state.site_vars[fingerprints.site_vars_digest] = fingerprints.site_vars
    record_stack(state, checked_render(site, planned.standard), "rendered", "no pulumi CLI", run)
    state.record_run({"run": run, "started": "2026-11-21T10:00:00Z", "outcome": "completed"})
    state.save()
    return state
