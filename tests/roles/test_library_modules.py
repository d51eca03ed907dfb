"""The roles' own Ansible modules, without a host: what they make of real tools' answers.

node_health's module reads nvidia-smi's CSV as A100/H100/H200/L40S (row remapping) and
older GPUs (page retirement) print it; k8s_node's module turns a Node as kubectl prints
it into the kubectl arguments that make it the inventory's.
"""

from __future__ import annotations

import importlib.util
from types import ModuleType

from tests.conftest import REPO


def load(role: str, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPO / "plugins" / "modules" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


health = load("node_health", "ecohash_node_health")
labels = load("k8s_node", "ecohash_node_labels")


class FakeModule:
    """An AnsibleModule whose nvidia-smi answers as given, by query option."""

    def __init__(self, answers: dict[str, tuple[int, str]]):
        self.answers = answers

    def get_bin_path(self, name: str) -> str:
        return f"/usr/bin/{name}"

    def run_command(self, argv: list[str]) -> tuple[int, str, str]:
        option = argv[1].split("=")[0]
        rc, out = self.answers[option]
        return rc, out, "" if rc == 0 else out


UUIDS = ["GPU-4edbe498-f818-c614-ac8a-757613f54b32", "GPU-7dd9dec7-4f5c-7deb-11bf-7dca9a40f8b2"]
# nvidia-smi --query-gpu=<FIELDS> --format=csv,noheader,nounits on an H100 node: the
# retired pages are [N/A], as on every GPU that remaps rows instead.
H100_GPUS = "".join(
    f"{i}, {uuid}, NVIDIA H100 80GB HBM3, 550.127.05, 450.00, Enabled, 0, [N/A]\n"
    for i, uuid in enumerate(UUIDS)
)
# nvidia-smi --query-remapped-rows=gpu_uuid,remapped_rows.pending,remapped_rows.failure
REMAPPED = f"{UUIDS[0]}, 0, 0\n{UUIDS[1]}, 0, 0\n"


def memory_checks(gpus_csv: str, remapped: tuple[int, str]) -> dict[str, dict]:
    module = FakeModule({"--query-gpu": (0, gpus_csv), "--query-remapped-rows": remapped})
    gpus, problem = health.query_gpus(module)
    assert problem is None
    checks = health.memory_repair_checks(gpus, health.query_remapped_rows(module))
    return {c["check"]: c for c in checks}


def test_gpus_that_remap_rows_pass_with_their_retired_pages_not_applicable() -> None:
    checks = memory_checks(H100_GPUS, (0, REMAPPED))
    assert all(c["passed"] for c in checks.values())
    assert checks["retired_pages_pending"]["found"] == [
        "GPU 0: not applicable (row remapping)", "GPU 1: not applicable (row remapping)"]
    assert checks["remapped_rows_pending"]["found"] == ["GPU 0: 0", "GPU 1: 0"]


def test_a_pending_row_remap_fails_the_gpu_in_either_spelling() -> None:
    for pending in ("1", "Yes"):
        checks = memory_checks(H100_GPUS, (0, f"{UUIDS[0]}, 0, 0\n{UUIDS[1]}, {pending}, 0\n"))
        assert not checks["remapped_rows_pending"]["passed"]
        assert checks["remapped_rows_pending"]["found"] == ["GPU 0: 0", f"GPU 1: {pending}"]
        assert "reset the GPU" in checks["remapped_rows_pending"]["expected"]
        assert checks["remapped_rows_failure"]["passed"]


def test_a_failed_row_remap_fails_the_gpu() -> None:
    checks = memory_checks(H100_GPUS, (0, f"{UUIDS[0]}, 0, No\n{UUIDS[1]}, No, Yes\n"))
    assert checks["remapped_rows_pending"]["passed"]
    assert not checks["remapped_rows_failure"]["passed"]
    assert checks["remapped_rows_failure"]["found"] == ["GPU 0: No", "GPU 1: Yes"]


def test_gpus_that_retire_pages_are_judged_by_their_retired_pages() -> None:
    # A V100 answers retired pages, and [N/A] for remapped rows.
    v100 = "".join(f"{i}, {uuid}, Tesla V100-SXM2-32GB, 550.127.05, 300.00, Enabled, 0, {pending}\n"
                   for i, (uuid, pending) in enumerate(zip(UUIDS, ("No", "Yes"), strict=True)))
    checks = memory_checks(v100, (0, f"{UUIDS[0]}, [N/A], [N/A]\n{UUIDS[1]}, [N/A], [N/A]\n"))
    assert set(checks) == {"retired_pages_pending"}
    assert not checks["retired_pages_pending"]["passed"]
    assert checks["retired_pages_pending"]["found"] == ["GPU 0: No", "GPU 1: Yes"]


def test_a_gpu_that_reports_neither_fails_rather_than_passing_on_na() -> None:
    # Retired pages [N/A] and a driver that cannot answer the remapped-rows query at all.
    checks = memory_checks(H100_GPUS, (2, 'Field "remapped_rows.pending" is not a valid field to query.'))
    assert not checks["retired_pages_pending"]["passed"]
    assert checks["retired_pages_pending"]["found"][0] == (
        "GPU 0: neither retired pages nor remapped rows reported")


# kubectl get node NAME -o json, as the API server answers (trimmed to what matters).
NODE = {
    "apiVersion": "v1",
    "kind": "Node",
    "metadata": {"name": "c02-r01-n02", "labels": {
        "kubernetes.io/hostname": "c02-r01-n02",
        "ecohash.io/site": "lab",
        "ecohash.io/container": "c01",
        "ecohash.io/stale": "yes",
        "example.com/theirs": "kept",
    }},
    "spec": {"taints": [
        {"key": "nvidia.com/gpu", "value": "present", "effect": "PreferNoSchedule"},
        {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},
    ]},
}


def test_labels_become_the_inventorys_and_stale_ecohash_labels_go() -> None:
    label_args, taint_args = labels.plan(
        NODE, {"ecohash.io/site": "lab", "ecohash.io/container": "c02"},
        ["nvidia.com/gpu=present:PreferNoSchedule"], "ecohash.io/", ["nvidia.com/gpu"])
    assert label_args == ["ecohash.io/container=c02", "ecohash.io/stale-"]
    assert taint_args == []  # and nobody else's taint is touched


def test_a_node_that_lost_its_gpus_loses_the_gpu_taint_and_a_changed_one_is_replaced() -> None:
    managed = {"ecohash.io/site": "lab", "ecohash.io/container": "c01", "ecohash.io/stale": "yes"}
    assert labels.plan(NODE, managed, [], "ecohash.io/", ["nvidia.com/gpu"]) == (
        [], ["nvidia.com/gpu:PreferNoSchedule-"])
    # kubectl refuses to remove and add one taint in a call: --overwrite replaces it.
    assert labels.plan(NODE, managed, ["nvidia.com/gpu=many:PreferNoSchedule"], "ecohash.io/",
                       ["nvidia.com/gpu"]) == ([], ["nvidia.com/gpu=many:PreferNoSchedule"])


def test_a_node_as_the_inventory_says_needs_nothing() -> None:
    managed = {"ecohash.io/site": "lab", "ecohash.io/container": "c01", "ecohash.io/stale": "yes"}
    assert labels.plan(NODE, managed, ["nvidia.com/gpu=present:PreferNoSchedule"], "ecohash.io/",
                       ["nvidia.com/gpu"]) == ([], [])
