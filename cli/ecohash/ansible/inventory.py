"""The site file as an Ansible inventory: groups, host vars and the caps the budget sets.

The inventory plugin (plugins/inventory/ecohash_site.py) is a thin adapter over this
module, so the mapping is tested without Ansible and the plugin holds no site logic.
Every value comes from the site file, the budget compiled from it, and the node standard
it names: nothing is copied into a second file.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecohash.ansible.inventory_data import Inventory
from ecohash.budget import Plan, compile_budget
from ecohash.errors import InventoryError, Problem
from ecohash.inventory.labels import (
    LABEL_PREFIX,
    TAINT_KEYS,
    container_labels,
    k3s_taint,
    node_taints,
    rack_labels,
    site_labels,
    sku_labels,
)
from ecohash.inventory.loader import load_site
from ecohash.inventory.site import Node, Site
from ecohash.paths import fetched_kubeconfig_file, secrets_dir
from ecohash.ssh.host_key_checking import HOST_KEY_CHECKING_ARGS, check_ssh_config
from ecohash.standard import NodeStandard, load_standard, standard_file_of

_NOT_IN_GROUP_NAMES = re.compile(r"[^A-Za-z0-9_]")
SERVERS_GROUP = "k8s_servers"
AGENTS_GROUP = "k8s_agents"
GPU_NODES_GROUP = "gpu_nodes"
# A node's Kubernetes labels (ecohash.inventory.labels.node_labels), each part on the group it
# is true for, in the order node_labels combines them: one dictionary per host would be
# half of what Ansible spends on a 10,000-node inventory. roles/k8s_node/defaults/main.yml
# combines them in this order too.
K8S_LABEL_PARTS = ("ecohash_k8s_site_labels", "ecohash_k8s_container_labels", "ecohash_k8s_rack_labels",
                   "ecohash_k8s_sku_labels")


def group_name(prefix: str, *parts: str) -> str:
    """An Ansible-safe group name: Ansible warns on '-' in names, so it becomes '_'."""
    return _NOT_IN_GROUP_NAMES.sub("_", "_".join((prefix, *parts)))


def k8s_labels(host_vars: Mapping[str, Any]) -> dict[str, str]:
    """The node's Kubernetes labels from its variables (Inventory.host_vars), its parts
    combined as the k8s_node role combines them; none without Kubernetes."""
    labels: dict[str, str] = {}
    for part in K8S_LABEL_PARTS:
        labels.update(host_vars.get(part) or {})
    return labels


def load_inventory(site_file: str | Path) -> Inventory:
    """Load, validate and plan the site, and map it onto Ansible's groups and variables."""
    return inventory_for(load_site(site_file))


def inventory_for(site: Site) -> Inventory:
    """Plan a loaded site and map it, with the node standard it names, onto Ansible's terms."""
    return planned_inventory(site).inventory


@dataclass(frozen=True)
class PlannedInventory:
    """A site's plan, the node standard it names, and both mapped onto Ansible's terms."""

    plan: Plan
    standard: NodeStandard
    inventory: Inventory


def planned_inventory(site: Site) -> PlannedInventory:
    """Plan first: an infeasible site is refused before the standard is even read."""
    plan = compile_budget(site)
    standard = load_standard(standard_file_of(site))
    return PlannedInventory(plan, standard, build_inventory(site, plan, standard))


def build_inventory(site: Site, plan: Plan, standard: NodeStandard) -> Inventory:
    inventory = Inventory()
    provisioning = site.document.spec.provisioning
    site_group = group_name("site", site.name)
    inventory.children["all"].append(site_group)
    kubernetes = site.kubernetes
    servers = set(kubernetes.servers) if kubernetes else set()
    # Every node of the site is reached the same way. On the site group, not on `all`:
    # Ansible's implicit localhost takes `all`'s variables, and tasks delegated to the
    # controller must not become the site's ssh user or sudo; nor may the hosts of a
    # second inventory source (`-i site.yaml -i other,`), which share `all` too.
    inventory.group_vars[site_group] = _connection_vars(site)
    if not kubernetes:
        # No k8s_ group exists to say it; with Kubernetes each node's role group does.
        inventory.group_vars[site_group]["ecohash_k8s_role"] = None
    else:
        inventory.group_vars[site_group]["ecohash_k8s_site_labels"] = site_labels(site.name)

    racks_by_group: dict[str, str] = {}
    for container in site.containers:
        container_group = group_name("container", container.name)
        inventory.children[site_group].append(container_group)
        container_vars: dict[str, Any] = {"ecohash_container": container.name}
        if kubernetes:
            container_vars["ecohash_k8s_container_labels"] = container_labels(container)
        inventory.group_vars[container_group] = container_vars
        for rack in container.racks:
            rack_group = group_name("rack", container.name, rack.name)
            # '-' and '_' both become '_': c01 / a-b and c01-a / b would share a group, and
            # `--limit rack_c01_a_b` would reach both racks.
            other = racks_by_group.setdefault(rack_group, rack.qualified_name)
            if other != rack.qualified_name:
                raise InventoryError([Problem(
                    str(site.file), site.line_of(rack.path),
                    f"rack {rack.qualified_name} and rack {other} both make the Ansible group "
                    f"{rack_group}; rename one",
                )])
            inventory.children[container_group].append(rack_group)
            inventory.group_vars[rack_group] = {"ecohash_rack": rack.name}
            if kubernetes:
                inventory.group_vars[rack_group]["ecohash_k8s_rack_labels"] = rack_labels(rack.name)
    for node_plan in plan.nodes:
        node = node_plan.node
        inventory.groups[group_name("rack", node.container, node.rack)].append(node.name)
        sku_group = group_name("sku", node.sku_name)
        inventory.groups[sku_group].append(node.name)
        if sku_group not in inventory.group_vars:
            inventory.group_vars[sku_group] = _sku_vars(node, kubernetes is not None)
        # gpu_ groups carry no variables: the GPU model is the SKU's, set on sku_ (a sibling
        # at the same depth, where two groups setting one key would be decided by name).
        if node.gpu is not None:
            inventory.groups[group_name("gpu", node.sku.gpu or "")].append(node.name)
            inventory.groups[GPU_NODES_GROUP].append(node.name)
        if kubernetes:
            role = "server" if node.name in servers else "agent"
            role_group = SERVERS_GROUP if role == "server" else AGENTS_GROUP
            inventory.groups[role_group].append(node.name)
            inventory.group_vars.setdefault(role_group, {"ecohash_k8s_role": role})
        # The node's own: its address and its cap.
        inventory.hosts[node.name] = {
            "ansible_host": str(node.mgmt_ip),
            "ecohash_gpu_cap_w": node_plan.gpu_cap_w,
            "ecohash_gpu_capped_by": node_plan.capped_by,
        }
    if provisioning.executor is not None and provisioning.executor.host in inventory.hosts:
        # The node that runs the site's waves receives the controller's forwarded agent:
        # its sshd allows agent forwarding, and no other node's does (roles/base).
        inventory.hosts[provisioning.executor.host]["ecohash_site_executor"] = True

    nodes_by_name = {node.name: node for node in site.nodes}
    mirror = provisioning.mirror
    inventory.all_vars = {
        "ecohash_site": site.name,
        # Where the controller keeps this site's secrets (the k3s join token), mode 0700.
        "ecohash_secrets_dir": str(secrets_dir(site.name)),
        "ecohash_site_file": str(site.file.resolve()),
        # Where the first server's kubeconfig is kept for the site stack (mode 0600): always
        # the secrets directory, never spec.kubernetes.kubeconfig (the user's, only read).
        "ecohash_kubeconfig_file": str(fetched_kubeconfig_file(site.name).resolve()) if kubernetes else None,
        "ecohash_standard": standard.for_ansible(),
        "ecohash_apt_proxy": provisioning.apt_proxy,
        "ecohash_mirror_url": mirror.url if mirror else None,
        "ecohash_mirror_keyring_sha256": mirror.keyring_sha256 if mirror else None,
        "ecohash_mirror_only": mirror.only if mirror else False,
        "ecohash_registry": provisioning.registry,
        # Where ansible-runner lives on the site's executor, if it has one: the executor role
        # installs it there and provision runs it from there (ecohash.ansible.remote).
        "ecohash_executor_path": provisioning.executor.path if provisioning.executor else None,
        "ecohash_ntp_servers": list(provisioning.ntp_servers),
        "ecohash_rollout_serial": provisioning.rollout.serial,
        "ecohash_rollout_max_fail_percentage": provisioning.rollout.max_fail_percentage,
        "ecohash_k8s_distribution": kubernetes.distribution if kubernetes else None,
        # Which of a Node's labels and taints are ecohash's to set and remove.
        "ecohash_k8s_label_prefix": LABEL_PREFIX,
        "ecohash_k8s_taint_keys": list(TAINT_KEYS),
        # Agents join the first server; servers after the first join it too (embedded etcd).
        "ecohash_k8s_servers": [
            {"name": name, "address": str(nodes_by_name[name].mgmt_ip)}
            for name in (kubernetes.servers if kubernetes else [])
        ],
    }
    return inventory


def _sku_vars(node: Node, kubernetes: bool) -> dict[str, Any]:
    """What every node of the node's SKU shares: its GPUs, and with Kubernetes its taints and labels."""
    variables: dict[str, Any] = {
        "ecohash_sku": node.sku_name,
        "ecohash_gpu_model": node.sku.gpu,
        "ecohash_gpu_count": node.gpus,
        "ecohash_gpu_nvidia_smi_name": node.gpu.nvidia_smi_name if node.gpu else None,
    }
    if kubernetes:
        variables["ecohash_k8s_taints"] = [k3s_taint(t) for t in node_taints(node)]
        variables["ecohash_k8s_sku_labels"] = sku_labels(node)
    return variables


def _connection_vars(site: Site) -> dict[str, Any]:
    ssh = site.document.spec.provisioning.ssh
    variables: dict[str, Any] = {"ansible_user": ssh.user, "ansible_port": ssh.port}
    if ssh.user != "root":
        variables["ansible_become"] = True
    config = site.ssh_config_file
    if config:
        check_ssh_config(config)
    variables["ansible_ssh_common_args"] = ssh_common_args(config)
    return variables


def ssh_common_args(config: Path | str | None) -> str:
    """ansible_ssh_common_args for a connection with the ssh_config `config`, or without one."""
    # Ansible splits these arguments like a shell. Every connection gets them, with a site
    # ssh_config or without (then ssh reads the controller's), as options: no site value
    # ever becomes a line of ssh configuration.
    return shlex.join([*(["-F", str(config)] if config else []), *HOST_KEY_CHECKING_ARGS])
