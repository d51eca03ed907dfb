"""Where a site's rollout stands: each node's recorded result against what it should be now.

A node is `current` when its last result passed at the fingerprint its inputs give
today (provision's rule for skipping it, RolloutState.is_current); otherwise the parts
that changed say why it would be redone (standard, roles, vars, or version: the rules
that make fingerprints). This is what `ecohash status` shows and what a re-run of
provision acts on.
"""

from __future__ import annotations

from typing import Any

from ecohash.ansible.inventory import planned_inventory
from ecohash.inventory.site import Site
from ecohash.rollout.fingerprint import Fingerprints
from ecohash.rollout.state import PASSED, RolloutState

RUNS_SHOWN = 10


def site_status(site: Site) -> dict[str, Any]:
    planned = planned_inventory(site)
    plan, inventory = planned.plan, planned.inventory
    fingerprints = Fingerprints(inventory)
    state = RolloutState.load(site.name)
    nodes: list[dict[str, Any]] = []
    for node_plan in plan.nodes:
        name = node_plan.node.name
        fingerprint = fingerprints.of(name)
        record = state.nodes.get(name)
        nodes.append({
            "name": name,
            "container": node_plan.node.container,
            "status": record.status if record else "never",
            "current": state.is_current(name, fingerprint.value),
            "changed": fingerprint.changed_since(record.fingerprint, record.components) if record else [],
            "fingerprint": fingerprint.value,
            "recorded_fingerprint": record.fingerprint if record else None,
            "gpu_cap_w": node_plan.gpu_cap_w,
            "recorded_gpu_cap_w": record.cap_w if record else None,
            "recorded_at": record.time if record else None,
            "run": record.run if record else None,
            "reason": record.reason if record else None,
            "last_passed": record.last_passed if record else None,
        })
    counts: dict[str, int] = {}
    for node in nodes:
        # passed at an older fingerprint: outdated; failed, unreachable, never: as recorded
        key = "current" if node["current"] else "outdated" if node["status"] == PASSED else node["status"]
        counts[key] = counts.get(key, 0) + 1
    return {"site": site.name, "state_file": str(RolloutState.file_for(site.name)), "counts": counts,
            "nodes": nodes, "runs": state.runs[-RUNS_SHOWN:]}
