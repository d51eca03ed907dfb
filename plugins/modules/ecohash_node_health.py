#!/usr/bin/python
"""Ansible module: acceptance checks for an ecohash GPU node, decided and written down.

Runs on the node. Asks nvidia-smi (and optionally dcgmi) for what the node has, compares
it with what the node standard and the site budget require, and writes a JSON verdict.
The verdict holds only what was checked and found, never a timestamp, so a node whose
state did not change is reported unchanged.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: ecohash_node_health
short_description: Decide whether a GPU node passes ecohash's acceptance checks
description:
  - Checks GPU count, GPU model, driver version, power limits and persistence mode,
    uncorrected ECC errors, memory repair (pending retired pages on GPUs that retire
    pages; pending and failed row remaps on those that remap rows, A100, H100, H200 and
    L40S), and optionally a DCGM diagnostic, and writes the verdict as JSON.
  - Fails nothing itself; the role decides what a failed verdict does.
options:
  verdict_path: {type: path, required: true, description: Where the JSON verdict is written.}
  gpu_count: {type: int, required: true, description: GPUs the node's SKU has.}
  gpu_name: {type: str, description: Name nvidia-smi must print for every GPU.}
  driver_version: {type: str, required: true, description: Driver version the standard pins.}
  power_limit_w: {type: int, description: Power limit the site budget sets per GPU.}
  power_script:
    type: path
    description:
      - ecohash-gpu-power, when the node has it; while its read-back names a curtailment's
        override in force, that override's cap is the power limit expected instead.
  simulated: {type: bool, default: false, description: The node was built from a simulated standard.}
  dcgm_level: {type: int, default: 0, choices: [0, 1, 2, 3, 4], description: dcgmi diag level; 0 skips it.}
author: ecohash
"""

FIELDS = [
    "index",
    "uuid",
    "name",
    "driver_version",
    "power.limit",
    "persistence_mode",
    "ecc.errors.uncorrected.volatile.total",
    "retired_pages.pending",
]
NOT_AVAILABLE = ("[N/A]", "N/A", "[Not Supported]")
# GPUs since Ampere (A100, H100, H200, Ada's L40S) repair memory by remapping rows and
# report retired pages as N/A; older ones retire pages and report remapped rows as N/A.
REMAP_FIELDS = ["gpu_uuid", "remapped_rows.pending", "remapped_rows.failure"]
# nvidia-smi prints these flags as 0/1, and some releases as No/Yes.
NO = ("0", "No")


def query_gpus(module):
    smi = module.get_bin_path("nvidia-smi")
    if smi is None:
        return None, "nvidia-smi is not installed"
    rc, out, err = module.run_command(
        [smi, "--query-gpu=" + ",".join(FIELDS), "--format=csv,noheader,nounits"]
    )
    if rc != 0:
        return None, "nvidia-smi failed (exit %d): %s" % (rc, (err or out).strip())
    gpus = []
    for line in out.splitlines():
        if line.strip():
            gpus.append(dict(zip(FIELDS, [value.strip() for value in line.split(",")])))
    return gpus, None


def query_remapped_rows(module):
    """uuid -> the GPU's remapped-rows fields; empty when the tool cannot tell at all."""
    smi = module.get_bin_path("nvidia-smi")
    rc, out, _ = module.run_command(
        [smi, "--query-remapped-rows=" + ",".join(REMAP_FIELDS), "--format=csv,noheader,nounits"]
    )
    rows = {}
    if rc == 0:
        for line in out.splitlines():
            if line.strip():
                row = dict(zip(REMAP_FIELDS, [value.strip() for value in line.split(",")]))
                rows[row["gpu_uuid"]] = row
    return rows


def memory_repair_checks(gpus, remapped):
    """Pending page retirement, or a pending or failed row remap: the GPU's memory is bad.

    Each GPU is judged by the mechanism it reports; one that reports neither fails, so no
    GPU passes because its answers were N/A.
    """
    retired, retired_ok, pending, pending_ok, failure, failure_ok = [], [], [], [], [], []
    for gpu in gpus:
        label = "GPU %s" % gpu["index"]
        pages = gpu["retired_pages.pending"]
        rows = remapped.get(gpu["uuid"], {})
        row_pending = rows.get("remapped_rows.pending", "[N/A]")
        row_failure = rows.get("remapped_rows.failure", "[N/A]")
        if pages not in NOT_AVAILABLE:
            # "Yes": pages wait for retirement at the next reboot.
            retired.append("%s: %s" % (label, pages))
            retired_ok.append(pages == "No")
        elif row_pending in NOT_AVAILABLE:
            retired.append("%s: neither retired pages nor remapped rows reported" % label)
            retired_ok.append(False)
        else:
            retired.append("%s: not applicable (row remapping)" % label)
            retired_ok.append(True)
            # Pending: a row waits to be remapped at the next GPU reset. Failure: a remap
            # failed (no spare rows left). Either way the GPU must not take work.
            pending.append("%s: %s" % (label, row_pending))
            pending_ok.append(row_pending in NO)
            failure.append("%s: %s" % (label, row_failure))
            failure_ok.append(row_failure in NO)
    checks = [check("retired_pages_pending", all(retired_ok), retired, "No")]
    if pending:
        checks.append(check("remapped_rows_pending", all(pending_ok), pending,
                            "no row remap pending (one is: reset the GPU, then check again)"))
        checks.append(check("remapped_rows_failure", all(failure_ok), failure,
                            "no row remap failure (one is: the GPU needs replacing)"))
    return checks


def check(name, passed, found, expected=None):
    result = {"check": name, "passed": bool(passed), "found": found}
    if expected is not None:
        result["expected"] = expected
    return result


def curtailment_in_force(module, script):
    """The override of a curtailment in force, as the node's ecohash-gpu-power reads it; None if none.

    The script is the one place that decides whether an override is in force (its end not
    passed); a node without it (not provisioned yet) has none.
    """
    if not script or not os.access(script, os.X_OK):
        return None
    rc, out, _ = module.run_command([script, "read"])
    if rc != 0:
        return None
    try:
        override = json.loads(out.strip().splitlines()[-1]).get("override")
    except (ValueError, IndexError, AttributeError):
        return None
    return override if isinstance(override, dict) and isinstance(override.get("cap_w"), int) else None


def gpu_checks(params, gpus, override=None):
    checks = [check("gpu_count", len(gpus) == params["gpu_count"], len(gpus), params["gpu_count"])]
    drivers = sorted({g["driver_version"] for g in gpus})
    checks.append(check("driver_version", drivers == [params["driver_version"]], drivers,
                        params["driver_version"]))
    if params["gpu_name"]:
        names = sorted({g["name"] for g in gpus})
        checks.append(check("gpu_model", names == [params["gpu_name"]], names, params["gpu_name"]))
    if params["power_limit_w"] is not None:
        limits = [g["power.limit"] for g in gpus]
        # During a curtailment the event's cap is the node's cap, not a drift from the budget.
        expected = override["cap_w"] if override else params["power_limit_w"]
        ok = all(_number(v) == float(expected) for v in limits)
        checks.append(check("power_limit_w", ok, limits, expected))
        if override:
            checks[-1]["curtailment_event"] = override.get("event")
    modes = sorted({g["persistence_mode"] for g in gpus})
    checks.append(check("persistence_mode", modes == ["Enabled"], modes, "Enabled"))
    ecc = [g["ecc.errors.uncorrected.volatile.total"] for g in gpus]
    checks.append(check("ecc_uncorrected", all(_zero_or_na(v) for v in ecc), ecc, 0))
    return checks


def dcgm_check(module, level):
    dcgmi = module.get_bin_path("dcgmi")
    if dcgmi is None:
        return check("dcgm_diag", False, "dcgmi is not installed", "level %d passes" % level)
    rc, out, err = module.run_command([dcgmi, "diag", "-r", str(level)])
    failed = rc != 0 or "Fail" in out
    return check("dcgm_diag", not failed, "exit %d" % rc, "level %d passes" % level)


def _number(value):
    try:
        return float(value)
    except ValueError:
        return None


def _zero_or_na(value):
    return value in NOT_AVAILABLE or _number(value) == 0


def write_if_changed(path, content):
    try:
        with open(path) as existing:
            if existing.read() == content:
                return False
    except OSError:
        pass
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".verdict-")
    with os.fdopen(handle, "w") as out:
        out.write(content)
    os.chmod(temporary, 0o644)
    shutil.move(temporary, path)
    return True


def main():
    module = AnsibleModule(
        argument_spec=dict(
            verdict_path=dict(type="path", required=True),
            gpu_count=dict(type="int", required=True),
            gpu_name=dict(type="str"),
            driver_version=dict(type="str", required=True),
            power_limit_w=dict(type="int"),
            power_script=dict(type="path"),
            simulated=dict(type="bool", default=False),
            dcgm_level=dict(type="int", default=0, choices=[0, 1, 2, 3, 4]),
        ),
        supports_check_mode=True,
    )
    params = module.params
    gpus, problem = query_gpus(module)
    if gpus is None:
        checks = [check("nvidia_smi", False, problem)]
    else:
        checks = (gpu_checks(params, gpus, curtailment_in_force(module, params["power_script"]))
                  + memory_repair_checks(gpus, query_remapped_rows(module)))
        if params["dcgm_level"] > 0:
            checks.append(dcgm_check(module, params["dcgm_level"]))
    failed = [c["check"] for c in checks if not c["passed"]]
    verdict = {
        "node": os.uname()[1],
        "passed": not failed,
        "failed_checks": failed,
        # A simulated node can pass its checks, but it is never mistaken for a real one.
        "simulated": params["simulated"],
        "checks": checks,
    }
    content = json.dumps(verdict, indent=2, sort_keys=True) + "\n"
    changed = False if module.check_mode else write_if_changed(params["verdict_path"], content)
    module.exit_json(changed=changed, verdict=verdict)


if __name__ == "__main__":
    main()
