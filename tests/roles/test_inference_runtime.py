"""inference_runtime: model cache, runtime configuration with the pinned image digest."""

from __future__ import annotations

import json
import subprocess

import pytest

from ecohash.standard import load_standard
from tests.roles.conftest import ECOHASH, LAB_HOSTS, Bootstrapped
from tests.roles.registry import LAB_REGISTRY, site_with_registry

pytestmark = pytest.mark.lab


@pytest.mark.parametrize("name", LAB_HOSTS)
def test_model_cache_and_runtime_configuration(bootstrapped: Bootstrapped, name: str) -> None:
    host = bootstrapped.host(name)
    cache = host.file("/var/lib/ecohash/models")
    assert cache.is_directory
    assert cache.group == "ecohash-inference"
    assert cache.mode == 0o2775
    assert host.group("ecohash-inference").gid == 20480
    runtime = load_standard().inference_runtime
    config = json.loads(host.file("/etc/ecohash/inference-runtime.json").content_string)
    # No site registry in the lab: nodes pull the pinned digest from upstream.
    assert config == {
        "image": f"{runtime.image}@{runtime.digest}",
        "tag": runtime.tag,
        "model_cache_dir": "/var/lib/ecohash/models",
        "model_cache_gid": 20480,
        "gpus": 2,
    }


def test_drift_names_a_pinned_image_missing_from_a_node(bootstrapped: Bootstrapped) -> None:
    name = "c02-r01-n02"
    with site_with_registry(LAB_REGISTRY):
        result = subprocess.run([ECOHASH, "drift", "lab", "--limit", name, "--json"],
                                capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    [node] = json.loads(result.stdout)["nodes"]
    assert node["status"] == "drifted"
    tasks = {change["task"] for change in node["changes"]}
    assert "Report the missing image as a pull to come" in tasks, tasks
