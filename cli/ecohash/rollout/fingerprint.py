"""A node's standard fingerprint: one hash of everything that decides what the node becomes.

Three parts, each hashed on its own so a change can be named ("roles changed", "vars
changed") and combined into the fingerprint that rollout state records per node:

- standard: the node standard's entries this node is built from (a CPU-only node does
  not depend on the driver, so a driver bump does not redo the control plane);
- roles: the contents of the roles this node gets (those playbooks/node.yml gives a node
  of its kind, and every role they import, include or depend on, read from the files by
  ecohash.ansible.content), of the playbooks that run them, of ansible.cfg and of the
  plugins it names;
- vars: the variables the inventory gives the node (its cap, labels, servers, mirror...).

Left out, because they do not change what a node becomes: how Ansible connects
(user, port, ssh config), where this controller keeps files (paths differ between
laptops), and rollout pacing (serial, max fail percentage). Secrets are never inputs:
the join token is read by the role on the controller and is in no variable.
"""

from __future__ import annotations

import hashlib
import json
from collections import ChainMap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecohash.ansible.content import PlaybookContent, config_files
from ecohash.ansible.inventory import Inventory
from ecohash.paths import project_root
from ecohash.rollout.state import NodeRecord
from ecohash.timestamps import utc_time

# 2: the roles part follows imports and dependencies, and covers ansible.cfg and its plugins.
FINGERPRINT_VERSION = 2

# What provision and drift run on every node; the roles part holds what it runs.
PLAYBOOK = "bootstrap.yml"

# Sections of node-standard.lock.yml, by the kind of node built from them. gpu_operator
# is the site stack's, not a node's.
STANDARD_EVERY_NODE = ("apiVersion", "kind", "metadata", "containerd")
STANDARD_GPU_NODE = ("nvidia_driver", "nvidia_container_toolkit", "inference_runtime")
STANDARD_K8S_NODE = ("k3s",)

NOT_STANDARD_VARS = frozenset({
    # how Ansible reaches the node
    "ansible_user", "ansible_port", "ansible_become", "ansible_ssh_common_args",
    # this controller's paths
    "ecohash_secrets_dir", "ecohash_site_file", "ecohash_kubeconfig_file",
    # where the rollout runs from, not what it makes of the node
    "ecohash_executor_path",
    # pacing of a rollout, not its result
    "ecohash_rollout_serial", "ecohash_rollout_max_fail_percentage",
    # hashed per section above
    "ecohash_standard",
})


@dataclass(frozen=True)
class Fingerprint:
    value: str
    components: Mapping[str, str]  # "standard" | "roles" | "vars" -> sha256
    # The node's own variables hashed into "vars" (the site-wide ones are Fingerprints.site_vars).
    node_vars: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def changed_since(self, recorded_value: str, recorded_components: Mapping[str, str]) -> list[str]:
        """Which parts differ from a recorded fingerprint's; "version" when none does but the
        value does (FINGERPRINT_VERSION changed how parts are made), so a node that is not
        current always has a reason."""
        parts = sorted(part for part, digest in self.components.items()
                       if recorded_components.get(part) != digest)
        if not parts and recorded_value != self.value:
            return ["version"]
        return parts


def _digest(data: Any) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _tree_digest(root: Path, names: tuple[str, ...]) -> str:
    """Hash of the named files and directories under root: relative paths and contents."""
    digest = hashlib.sha256()
    for name in names:
        path = root / name
        files = [path] if path.is_file() else sorted(
            p for p in path.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
        )
        for file in files:
            relative = file.relative_to(root).as_posix().encode()
            content = file.read_bytes()
            digest.update(b"%d:%s%d:" % (len(relative), relative, len(content)))
            digest.update(content)
    return digest.hexdigest()


class Fingerprints:
    """Fingerprints of an inventory's nodes; parts shared by many nodes are hashed once."""

    def __init__(self, inventory: Inventory, root: Path | None = None):
        self._inventory = inventory
        self._root = root or project_root()
        self._standard: dict[str, Any] = inventory.all_vars["ecohash_standard"]
        self.site_vars = {k: v for k, v in inventory.all_vars.items() if k not in NOT_STANDARD_VARS}
        self.site_vars_digest = _digest(self.site_vars)
        self._standard_by_kind: dict[tuple[bool, bool], str] = {}
        self._content = PlaybookContent(self._root, PLAYBOOK)
        self._roles_digests: dict[frozenset[str], str] = {}

    def of(self, node: str) -> Fingerprint:
        host_vars = self._inventory.host_vars(node)
        kind = (int(host_vars.get("ecohash_gpu_count") or 0) > 0, bool(host_vars.get("ecohash_k8s_role")))
        if kind not in self._standard_by_kind:
            self._standard_by_kind[kind] = self._standard_digest(*kind)
        node_vars = {k: v for k, v in host_vars.items() if k not in NOT_STANDARD_VARS}
        components = {"standard": self._standard_by_kind[kind], "roles": self._roles_digest(host_vars),
                      "vars": _digest({**self.site_vars, **node_vars})}
        value = _digest({"version": FINGERPRINT_VERSION, **components})
        return Fingerprint(value, components, node_vars)

    def record(self, node: str, fingerprint: Fingerprint, *, status: str, reason: str | None, run: str,
               duration_s: float | None) -> NodeRecord:
        """What rollout state keeps of a node a run finished with at `fingerprint` (taken
        before the run): provision and bootstrap record it alike."""
        return NodeRecord(
            fingerprint=fingerprint.value,
            components=dict(fingerprint.components),
            status=status,
            reason=reason,
            cap_w=self._inventory.host_vars(node)["ecohash_gpu_cap_w"],
            time=utc_time(),
            run=run,
            duration_s=duration_s,
            vars=dict(fingerprint.node_vars),
            site_vars=self.site_vars_digest,
        )

    def roles_of(self, node: str) -> frozenset[str]:
        """The roles a rollout runs on the node, every import, include and dependency included."""
        return self._content.roles_for(ChainMap(self._inventory.host_vars(node), self._inventory.all_vars))

    def _standard_digest(self, gpu: bool, k8s: bool) -> str:
        sections = _chosen(STANDARD_EVERY_NODE, STANDARD_GPU_NODE, STANDARD_K8S_NODE, gpu, k8s)
        return _digest({name: self._standard.get(name) for name in sections})

    def _roles_digest(self, host_vars: dict[str, Any]) -> str:
        roles = self._content.roles_for(ChainMap(host_vars, self._inventory.all_vars))
        if roles not in self._roles_digests:
            self._roles_digests[roles] = _digest({
                "roles": _tree_digest(self._root / "roles", tuple(sorted(roles))),
                "playbooks": _tree_digest(self._root, tuple(self._content.files)),
                "ansible": _tree_digest(self._root, tuple(config_files(self._root))),
            })
        return self._roles_digests[roles]


def _chosen(every: Iterable[str], gpu_only: Iterable[str], k8s_only: Iterable[str],
            gpu: bool, k8s: bool) -> tuple[str, ...]:
    return (*every, *(gpu_only if gpu else ()), *(k8s_only if k8s else ()))
