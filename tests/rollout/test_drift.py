"""Drift findings from a check-mode run's events: what each node would change, and why."""

from __future__ import annotations

from collections import Counter

from ecohash.ansible.runner import REPORT_TASK, HostProgress, diff_text, task_change
from ecohash.rollout.drift import DRIFTED, IN_STANDARD, UNREACHABLE, node_drift

TEMPLATE_DIFF = {
    "before": "# Ansible managed\nECOHASH_GPU_CAP_W=999\n",
    "after": "# Ansible managed\nECOHASH_GPU_CAP_W=350\n",
    "before_header": "/etc/ecohash/gpu-power.env",
    "after_header": "/root/.ansible/tmp/ansible-local-1/tmpx/gpu-power.env.j2",
}


def test_a_changed_file_is_a_unified_diff_named_by_its_path_on_the_host() -> None:
    change = task_change({"role": "gpu_power", "task": "Record the cap", "task_action": "template"},
                         {"changed": True, "diff": [TEMPLATE_DIFF]})
    assert change.path == "/etc/ecohash/gpu-power.env"  # not the template's temporary copy
    assert change.diff.splitlines() == [
        "--- /etc/ecohash/gpu-power.env (on the host)",
        "+++ /etc/ecohash/gpu-power.env (the standard)",
        "@@ -1,2 +1,2 @@",
        " # Ansible managed",
        "-ECOHASH_GPU_CAP_W=999",
        "+ECOHASH_GPU_CAP_W=350",
    ]


def test_attribute_changes_loops_and_prepared_text() -> None:
    assert diff_text({"before": {"path": "/etc/x", "mode": "0644"}, "after": {"path": "/etc/x", "mode": "0600"}}) \
        == "mode: 0644 -> 0600\n"
    assert diff_text({"prepared": "The following packages will be upgraded:\n  containerd"}) \
        == "The following packages will be upgraded:\n  containerd\n"
    assert diff_text({"before": "same\n", "after": "same\n"}) == ""
    looped = task_change({"role": "base", "task": "Files", "task_action": "file"},
                         {"changed": True, "results": [{"path": "/etc/a", "diff": {"before": {"state": "absent"},
                                                                                  "after": {"state": "file"}}}]})
    assert (looped.path, looped.diff) == ("/etc/a", "state: absent -> file\n")


def test_a_no_log_task_shows_that_it_would_change_and_nothing_of_what() -> None:
    change = task_change({"role": "k8s_node", "task": "Write the join token", "task_action": "copy"},
                         {"censored": "the output has been hidden due to the fact that 'no_log: true'",
                          "changed": True})
    assert (change.path, change.diff) == (None, None)


def progress(name: str, **fields) -> HostProgress:
    host = HostProgress(name)
    for key, value in fields.items():
        setattr(host, key, value)
    return host


def test_node_verdicts() -> None:
    clean = node_drift("n1", progress("n1", counts=Counter(ok=40), ran_node_play=True))
    assert clean["status"] == IN_STANDARD and clean["changes"] == [] and clean["findings"] == []
    unanswered = node_drift("n2", progress("n2", counts=Counter(failed=1),
                                           failure=REPORT_TASK + "did not answer over SSH: timed out"))
    assert unanswered["status"] == UNREACHABLE and unanswered["reason"] == "did not answer over SSH: timed out"
    assert node_drift("n3", None)["status"] == UNREACHABLE
    capped = node_drift("n4", progress(
        "n4", counts=Counter(ok=30, changed=1, failed=1),
        failure=REPORT_TASK + "failed acceptance: power_limit_w",
        changes=[task_change({"role": "gpu_power", "task": "Apply the cap", "task_action": "systemd"},
                             {"changed": True})],
        health={"passed": False, "checks": [
            {"check": "power_limit_w", "passed": False, "found": ["300.00", "300.00"], "expected": 450},
            {"check": "gpu_count", "passed": True, "found": 2, "expected": 2}]}))
    assert capped["status"] == DRIFTED
    assert capped["findings"] == ["acceptance check power_limit_w: found ['300.00', '300.00'], expected 450"]
    assert [c["task"] for c in capped["changes"]] == ["Apply the cap"]
    stopped = node_drift("n5", progress("n5", counts=Counter(failed=1), failure="Install k3s: checksum mismatch"))
    assert stopped["status"] == DRIFTED and stopped["findings"] == ["the check stopped: Install k3s: checksum mismatch"]


def test_a_node_whose_checks_never_ran_is_not_checked_rather_than_in_standard() -> None:
    # The playbook ended early (a Kubernetes server failed, so the agents' play never
    # started): the agents have only the reachability play's ok events and no error.
    # Nothing proves them in standard, so they are "not checked".
    never_ran = node_drift("agent", progress("agent", counts=Counter(ok=3)))
    assert never_ran["status"] == UNREACHABLE
    assert "ended before this node's checks ran" in never_ran["reason"]
    # A change the node would make is evidence of drift whether or not its play finished.
    partly = node_drift("agent2", progress("agent2", counts=Counter(ok=3, changed=1), changes=[
        task_change({"role": "base", "task": "Set the motd", "task_action": "copy"}, {"changed": True})]))
    assert partly["status"] == DRIFTED
