"""What `ecohash bootstrap` converged, recorded in rollout state so status, plan and fleet see it.

Bootstrap runs the same playbook on the same inventory as a provision wave, so a node it
brings through the whole node play is as standard as a provisioned one at the same
fingerprint, and a later provision may skip it. Only positive evidence is recorded: a
node that reported the node play's last task (NODE_RAN_TASK) with no failure. A failed,
unreachable or unfinished node keeps whatever it had, since bootstrap does not verify
and its failure says nothing a provision's record does not say better. A check run
changes nothing, so it records nothing.
"""

from __future__ import annotations

from ecohash.ansible.inventory import Inventory
from ecohash.ansible.runner import RunResult
from ecohash.rollout.fingerprint import Fingerprints
from ecohash.rollout.state import PASSED, RolloutState

# Said in the record's reason: the node passed the playbook, not testinfra's verification.
NOT_VERIFIED = "converged by `ecohash bootstrap` (not verified: provision verifies)"


def converged_nodes(result: RunResult) -> list[str]:
    """The nodes the run brought through the whole node play, failing nothing."""
    return sorted(name for name, host in result.hosts.items()
                  if host.ran_node_play and host.state not in ("failed", "unreachable"))


class ConvergedRecorder:
    """Fingerprints taken before the run, of the nodes in its scope as the run is given them;
    recorded after it for those that converged, so a file edited during the run is not
    credited to it."""

    def __init__(self, site_name: str, inventory: Inventory, scope: list[str]):
        self.site_name = site_name
        self.fingerprints = Fingerprints(inventory)
        self.given = {name: self.fingerprints.of(name) for name in scope}

    def record(self, result: RunResult) -> list[str]:
        """Record every converged node as passed at its fingerprint; return their names."""
        names = [name for name in converged_nodes(result) if name in self.given]
        if not names:
            return []
        state = RolloutState.load(self.site_name)
        for name in names:
            state.record(name, self.fingerprints.record(
                name, self.given[name], status=PASSED, reason=NOT_VERIFIED, run=result.directory.name,
                duration_s=result.hosts[name].duration_s))
        state.site_vars[self.fingerprints.site_vars_digest] = self.fingerprints.site_vars
        state.save()
        return names
