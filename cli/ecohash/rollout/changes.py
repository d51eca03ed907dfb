"""What a rollout would change: the inventory's intended state against the last one recorded.

Two halves, each compared with what rollout state recorded:

- nodes: a node is unchanged when it passed at the fingerprint its inputs give today
  (provision's rule for skipping it, RolloutState.is_current); otherwise it is to be
  created (never provisioned), updated (a part of its fingerprint changed: standard,
  roles or vars, the vars named key by key with old and new values, or only the rules
  that make fingerprints),
  retried (its last run did not pass) or removed (no longer in the inventory);
- objects: the site stack rendered now against the last rollout's render (kept in the
  state directory), object by object, with a unified diff for each changed one.

`ecohash plan` shows both; `ecohash drift` uses the object half when it cannot ask a
cluster. Nothing here contacts a node or a cluster, and the result holds no timestamp
of its own and no path of this machine, so the same inputs give the same bytes anywhere.
"""

from __future__ import annotations

import difflib
import hashlib
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from ecohash.ansible.inventory import PlannedInventory, planned_inventory
from ecohash.inventory.site import Site
from ecohash.rollout.fingerprint import Fingerprints
from ecohash.rollout.state import PASSED, RolloutState, StackRecord
from ecohash.stack.render import Rendered, checked_render, file_name, write_render
from ecohash.timestamps import utc_time

CREATE, UPDATE, RETRY, REMOVE, DELETE = "create", "update", "retry", "remove", "delete"
PART_WORDS = {"standard": "node standard", "roles": "roles or playbooks", "vars": "inventory variables",
              "version": "fingerprint rules"}


def record_stack(state: RolloutState, rendered: Rendered, action: str, reason: str | None, run: str) -> None:
    """Keep a rollout's render of the stack as the state the next plan compares with."""
    write_render(rendered, RolloutState.stack_dir_for(state.site))
    state.stack = StackRecord(
        action=action,
        reason=reason,
        run=run,
        time=utc_time(),
        objects={name: _sha256(text) for name, text in sorted(rendered.files().items())},
    )


def node_changes(planned: PlannedInventory, state: RolloutState) -> list[dict[str, Any]]:
    """Every node a rollout would act on, in the plan's order, then the nodes removed."""
    fingerprints = Fingerprints(planned.inventory)
    changes = []
    for node_plan in planned.plan.nodes:
        name = node_plan.node.name
        fingerprint = fingerprints.of(name)
        record = state.nodes.get(name)
        if record is None:
            changes.append(_node(name, CREATE, "never provisioned", list(fingerprint.components), []))
            continue
        if state.is_current(name, fingerprint.value):  # provision's rule for skipping a node
            continue
        parts = fingerprint.changed_since(record.fingerprint, record.components)
        recorded_vars = _recorded_vars(state, name)
        var_changes = [] if recorded_vars is None or "vars" not in parts else \
            _var_changes(recorded_vars, {**fingerprints.site_vars, **fingerprint.node_vars})
        if record.status != PASSED:
            why = f"last run {record.run}: {record.status}" + (f" ({record.reason})" if record.reason else "")
            changes.append(_node(name, RETRY, why, parts, var_changes))
        else:
            why = ", ".join(PART_WORDS[part] for part in parts) + " changed"
            changes.append(_node(name, UPDATE, why, parts, var_changes))
    for name in sorted(set(state.nodes) - set(planned.inventory.hosts)):
        changes.append(_node(name, REMOVE, "no longer in the inventory: provision forgets its record "
                                           "(the host itself is not touched)", [], []))
    return changes


def object_changes(rendered: Rendered, state: RolloutState) -> list[dict[str, Any]]:
    """Objects the stack would create, update or delete against the last rollout's render."""
    recorded: dict[str, str] = state.stack.get("objects", {}) if state.stack else {}
    stack_dir = RolloutState.stack_dir_for(state.site)
    changes = []
    by_name = {file_name(obj): obj for obj in rendered.objects}
    files = rendered.files()
    for name in sorted(set(files) | set(recorded)):
        if name not in recorded:
            changes.append(_object(name, by_name[name], CREATE, None))
        elif name not in files:
            before = _recorded_text(stack_dir / name)
            changes.append(_object(name, yaml.safe_load(before) if before else None, DELETE, None))
        elif recorded[name] != _sha256(files[name]):
            # Only a changed object's recorded copy is read: the digests decide the rest.
            before = _recorded_text(stack_dir / name)
            diff = None if before is None else "".join(difflib.unified_diff(
                before.splitlines(keepends=True), files[name].splitlines(keepends=True),
                fromfile=f"recorded/{name}", tofile=f"intended/{name}"))
            changes.append(_object(name, by_name[name], UPDATE, diff))
    return changes


def object_label(change: dict[str, Any]) -> str:
    """'ConfigMap ecohash-system/power-budget': how plan and drift name an object change."""
    where = f"{change['namespace']}/" if change["namespace"] else ""
    return f"{change['kind']} {where}{change['name']}"


def _recorded_text(path: Path) -> str | None:
    return path.read_text() if path.is_file() else None


def site_changes(site: Site) -> dict[str, Any]:
    """Plan's comparison: every node and object a rollout of the site would change."""
    planned = planned_inventory(site)
    state = RolloutState.load(site.name)
    nodes = node_changes(planned, state)
    objects = object_changes(checked_render(site, planned.standard), state) if site.kubernetes else []
    counts = Counter([f"nodes_{change['action']}" for change in nodes]
                     + [f"objects_{change['action']}" for change in objects])
    last_run = state.runs[-1] if state.runs else None
    return {
        "pending": bool(nodes or objects),
        "counts": dict(sorted(counts.items())),
        "last_run": {k: last_run.get(k) for k in ("run", "started", "outcome")} if last_run else None,
        "stack": {k: v for k, v in state.stack.items() if k != "objects"} if state.stack else None,
        "nodes": nodes,
        "objects": objects,
    }


def _recorded_vars(state: RolloutState, name: str) -> dict[str, Any] | None:
    record = state.nodes[name]
    if record.vars is None or record.site_vars not in state.site_vars:
        return None  # recorded before variables were kept: the part is named, not the keys
    return {**state.site_vars[record.site_vars], **record.vars}


def _var_changes(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    missing = object()
    changes = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key, missing), after.get(key, missing)
        if old != new:
            changes.append({"name": key, "from": None if old is missing else old,
                            "to": None if new is missing else new})
    return changes


def _node(name: str, action: str, reason: str, parts: list[str], var_changes: list[dict[str, Any]]
          ) -> dict[str, Any]:
    return {"name": name, "action": action, "reason": reason, "parts": parts, "vars": var_changes}


def _object(file: str, obj: dict[str, Any] | None, action: str, diff: str | None) -> dict[str, Any]:
    metadata = (obj or {}).get("metadata", {})
    return {"file": file, "kind": (obj or {}).get("kind"), "namespace": metadata.get("namespace"),
            "name": metadata.get("name"), "action": action, "diff": diff}


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
