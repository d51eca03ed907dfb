#!/usr/bin/python
"""Ansible module: make a Node's ecohash labels and taints the inventory's, on a live cluster.

k3s applies `node-label` and `node-taint` only when a node registers, so a node that moved
to another container would keep its old labels (and the scheduler its old power domain).
This module runs where the cluster-admin kubeconfig is (the first server) and sets the
Node's labels and taints with kubectl: every label under the managed prefix and every
taint with a managed key becomes what the inventory says, and those the inventory no longer
gives are removed. Labels and taints anyone else manages are left alone. Values reach
kubectl as arguments, never through a shell.
"""

from __future__ import annotations

import json
import time

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: ecohash_node_labels
short_description: Reconcile a Kubernetes Node's ecohash-managed labels and taints
description:
  - Sets the Node's labels under O(label_prefix) and its taints with a key in O(taint_keys)
    to what the inventory gives, with kubectl on the first Kubernetes server, and removes
    those the inventory no longer gives; other labels and taints are left alone.
options:
  node: {type: str, required: true, description: The Node's name.}
  labels: {type: dict, default: {}, description: The labels the Node must carry.}
  taints: {type: list, elements: str, default: [], description: The taints it must carry, as key=value:Effect.}
  label_prefix: {type: str, required: true, description: Labels under this prefix are ecohash's.}
  taint_keys: {type: list, elements: str, required: true, description: Taint keys that are ecohash's.}
  kubectl: {type: list, elements: str, default: [k3s, kubectl], description: The kubectl command.}
  kubeconfig: {type: path, default: /etc/rancher/k3s/k3s.yaml, description: Cluster-admin kubeconfig.}
  wait_s: {type: int, default: 120, description: How long to wait for the Node to register.}
author: ecohash
"""

NOT_FOUND = "(NotFound)"


def parse_taint(text):
    """key=value:Effect or key:Effect, as k3s's node-taint and kubectl take it."""
    spec, _, effect = text.rpartition(":")
    key, _, value = spec.partition("=")
    taint = {"key": key, "effect": effect}
    if value:
        taint["value"] = value
    return taint


def taint_spec(taint):
    value = taint.get("value")
    return "%s%s:%s" % (taint["key"], "=" + value if value else "", taint["effect"])


def plan(node, labels, taints, label_prefix, taint_keys):
    """The kubectl label and taint arguments that make `node` carry what the inventory says."""
    current = node.get("metadata", {}).get("labels") or {}
    label_args = ["%s=%s" % (k, v) for k, v in sorted(labels.items()) if current.get(k) != v]
    label_args += ["%s-" % k for k in sorted(current) if k.startswith(label_prefix) and k not in labels]
    present = [t for t in node.get("spec", {}).get("taints") or [] if t.get("key") in taint_keys]
    wanted = [parse_taint(t) for t in taints]
    present_specs = [taint_spec(t) for t in present]
    # kubectl refuses to remove and add one taint in the same call; --overwrite replaces a
    # taint of the same key and effect, so only taints whose key and effect go are removed.
    wanted_slots = [(t["key"], t["effect"]) for t in wanted]
    taint_args = ["%s:%s-" % (t["key"], t["effect"]) for t in present
                  if (t["key"], t["effect"]) not in wanted_slots]
    taint_args += [taint_spec(t) for t in wanted if taint_spec(t) not in present_specs]
    return label_args, taint_args


def managed(node, label_prefix, taint_keys):
    labels = node.get("metadata", {}).get("labels") or {}
    return {
        "labels": {k: v for k, v in sorted(labels.items()) if k.startswith(label_prefix)},
        "taints": sorted(taint_spec(t) for t in node.get("spec", {}).get("taints") or []
                         if t.get("key") in taint_keys),
    }


def main():
    module = AnsibleModule(
        argument_spec=dict(
            node=dict(type="str", required=True),
            labels=dict(type="dict", default={}),
            taints=dict(type="list", elements="str", default=[]),
            label_prefix=dict(type="str", required=True),
            taint_keys=dict(type="list", elements="str", no_log=False, required=True),
            kubectl=dict(type="list", elements="str", default=["k3s", "kubectl"]),
            kubeconfig=dict(type="path", default="/etc/rancher/k3s/k3s.yaml"),
            wait_s=dict(type="int", default=120),
        ),
        supports_check_mode=True,
    )
    params = module.params
    labels = {str(k): str(v) for k, v in params["labels"].items()}
    kubectl = list(params["kubectl"]) + ["--kubeconfig", params["kubeconfig"]]
    name = params["node"]

    # A node that just joined registers within seconds; wait for it rather than fail.
    deadline = time.monotonic() + params["wait_s"]
    while True:
        rc, out, err = module.run_command(kubectl + ["get", "node", name, "-o", "json"])
        if rc == 0:
            break
        if NOT_FOUND not in err or time.monotonic() >= deadline or module.check_mode:
            if NOT_FOUND in err and module.check_mode:
                module.exit_json(changed=True, msg="Node %s is not registered yet" % name)
            module.fail_json(msg="cannot read Node %s: %s" % (name, (err or out).strip()))
        time.sleep(2)
    node = json.loads(out)
    label_args, taint_args = plan(node, labels, params["taints"], params["label_prefix"], params["taint_keys"])
    before = managed(node, params["label_prefix"], params["taint_keys"])
    after = {"labels": dict(sorted(labels.items())),
             "taints": sorted(taint_spec(parse_taint(t)) for t in params["taints"])}
    changed = bool(label_args or taint_args)
    if changed and not module.check_mode:
        if label_args:
            module.run_command(kubectl + ["label", "--overwrite", "node", name] + label_args, check_rc=True)
        if taint_args:
            module.run_command(kubectl + ["taint", "--overwrite", "node", name] + taint_args, check_rc=True)
    module.exit_json(
        changed=changed, labels=label_args, taints=taint_args,
        diff={"before": json.dumps(before, indent=2) + "\n", "after": json.dumps(after, indent=2) + "\n",
              "before_header": "Node %s" % name, "after_header": "Node %s" % name},
    )


if __name__ == "__main__":
    main()
