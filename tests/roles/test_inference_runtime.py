"""inference_runtime: model cache, runtime configuration with the pinned image digest."""

from __future__ import annotations

import json

import pytest

from ecohash.standard import image_reference
from tests.roles.bootstraps import LAB_HOSTS, Bootstrapped
from tests.roles.registry import LAB_REGISTRY, lab_standard
from tests.roles.rounds import IMAGE_HOST, FaultRounds, changed_tasks

pytestmark = pytest.mark.lab


@pytest.mark.parametrize("name", LAB_HOSTS)
def test_model_cache_and_runtime_configuration(bootstrapped: Bootstrapped, name: str) -> None:
    host = bootstrapped.host(name)
    cache = host.file("/var/lib/ecohash/models")
    assert cache.is_directory
    assert cache.group == "ecohash-inference"
    assert cache.mode == 0o2775
    assert host.group("ecohash-inference").gid == 20480
    standard = lab_standard(bootstrapped.lab)
    runtime = standard.inference_runtime
    config = json.loads(host.file("/etc/ecohash/inference-runtime.json").content_string)
    # The lab's site registry holds the lab standard's image: nodes pull its digest from there.
    reference = image_reference(standard, LAB_REGISTRY)
    assert reference.startswith(LAB_REGISTRY.split("://", 1)[1] + "/") and runtime.digest in reference
    assert config == {
        "image": reference,
        "tag": runtime.tag,
        "model_cache_dir": "/var/lib/ecohash/models",
        "model_cache_gid": 20480,
        "gpus": 2,
    }


@pytest.mark.parametrize("name", LAB_HOSTS)
def test_the_pinned_image_was_pulled_from_the_site_registry(bootstrapped: Bootstrapped, name: str) -> None:
    reference = image_reference(lab_standard(bootstrapped.lab), LAB_REGISTRY)
    held = bootstrapped.host(name).check_output("ctr --namespace k8s.io images list --quiet").split()
    assert reference in held


def test_drift_names_a_pinned_image_missing_from_a_node_and_a_run_pulls_it_again(
    bootstrapped: Bootstrapped, faults: FaultRounds,
) -> None:
    result = faults.repair.image_drift
    assert result.returncode == 2, result.stdout + result.stderr
    [node] = json.loads(result.stdout)["nodes"]
    assert node["name"] == IMAGE_HOST and node["status"] == "drifted"
    tasks = {change["task"] for change in node["changes"]}
    assert "Report the missing image as a pull to come" in tasks, tasks
    # A run pulled it back from the registry by digest.
    assert faults.repair.run.returncode == 0, faults.repair.run.output
    assert changed_tasks(faults.repair.run, IMAGE_HOST, role="inference_runtime") != []
    reference = image_reference(lab_standard(bootstrapped.lab), LAB_REGISTRY)
    assert reference in bootstrapped.lab.ssh(IMAGE_HOST, "ctr --namespace k8s.io images list --quiet").stdout.split()
