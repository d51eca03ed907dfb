"""Strict validation of rendered objects against the schemas bundled in kubernetes-validate."""

from __future__ import annotations

import copy
from collections import Counter

import pytest

from ecohash.errors import InvalidInputError
from ecohash.stack import validation
from ecohash.stack.validation import ManifestValidator, ObjectProblem, supported_versions, validate_manifests

NS = "ecohash-c01"


def meta(name: str) -> dict:
    return {"name": name, "namespace": NS, "labels": {"app.kubernetes.io/name": "llama"}}


DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": meta("llama"),
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "llama"}},
        "template": {
            "metadata": {"labels": {"app": "llama"}},
            "spec": {
                "containers": [
                    {
                        "name": "server",
                        "image": "vllm/vllm-openai:v0.6.0",
                        "ports": [{"containerPort": 8000, "name": "http"}],
                        "resources": {"limits": {"nvidia.com/gpu": 4, "memory": "64Gi"}, "requests": {"cpu": "8"}},
                        "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}},
                    }
                ],
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            },
        },
    },
}

VALID = {
    "Deployment": DEPLOYMENT,
    "ConfigMap": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("cfg"), "data": {"a.yaml": "a: 1\n"}},
    "Namespace": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS, "labels": {"team": "infer"}}},
    "Service": {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta("llama"),
        "spec": {"selector": {"app": "llama"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    },
    "PodDisruptionBudget": {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta("llama"),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "llama"}}},
    },
    "HorizontalPodAutoscaler": {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta("llama"),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "llama"},
            "minReplicas": 1,
            "maxReplicas": 4,
            "metrics": [
                {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}
            ],
        },
    },
    "DaemonSet": {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": meta("power-exporter"),
        "spec": {
            "selector": {"matchLabels": {"app": "power-exporter"}},
            "template": {
                "metadata": {"labels": {"app": "power-exporter"}},
                "spec": {
                    "hostNetwork": True,
                    "containers": [{"name": "exporter", "image": "ecohash/power:1", "securityContext": {"privileged": True}}],
                },
            },
        },
    },
    "ResourceQuota": {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": meta("gpus"),
        "spec": {"hard": {"requests.nvidia.com/gpu": "8", "limits.memory": "512Gi", "pods": 20}},
    },
}

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "gpupools.ecohash.io"},
    "spec": {
        "group": "ecohash.io",
        "scope": "Namespaced",
        "names": {"kind": "GpuPool", "plural": "gpupools", "singular": "gpupool", "listKind": "GpuPoolList"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["sku", "nodes"],
                                "properties": {
                                    "sku": {"type": "string"},
                                    "nodes": {"type": "integer", "minimum": 0},
                                    "mode": {"type": "string", "enum": ["inference", "training"]},
                                    "maxUnavailable": {
                                        "x-kubernetes-int-or-string": True,
                                        "anyOf": [{"type": "integer"}, {"type": "string"}],
                                    },
                                    "note": {"type": "string", "nullable": True},
                                    "priority": {"type": "string", "enum": ["low", "high"], "nullable": True},
                                    "selector": {"type": "object", "additionalProperties": {"type": "string"}},
                                    "tuning": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                                },
                            },
                            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                        },
                    }
                },
            }
        ],
    },
}

POOL = {
    "apiVersion": "ecohash.io/v1",
    "kind": "GpuPool",
    "metadata": meta("h100"),
    "spec": {"sku": "n4", "nodes": 3, "mode": "inference", "maxUnavailable": "25%", "selector": {"rack": "r1"}},
}


def with_changes(obj: dict, **paths: object) -> dict:
    """A deep copy of obj with each dotted path (double underscores in the keyword) set to a value."""
    changed = copy.deepcopy(obj)
    for dotted, value in paths.items():
        *parents, last = dotted.split("__")
        node = changed
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[last] = value
    return changed


def problems(obj: dict, crds: tuple[dict, ...] = ()) -> list[str]:
    return [str(p) for p in ManifestValidator("1.35", crds).validate(obj)]


@pytest.mark.parametrize("kind", sorted(VALID))
def test_valid_objects_pass(kind):
    assert problems(VALID[kind]) == []


def test_snake_case_leftover_is_an_unknown_field_at_its_path():
    container = copy.deepcopy(DEPLOYMENT["spec"]["template"]["spec"]["containers"][0])
    container["resources"]["limits_gpu"] = 4
    container["image_pull_policy"] = "Always"
    obj = with_changes(DEPLOYMENT, spec__template__spec__containers=[container])
    assert ManifestValidator("1.35").validate(obj) == [
        ObjectProblem("Deployment ecohash-c01/llama", "spec.template.spec.containers[0].image_pull_policy", "unknown field"),
        ObjectProblem("Deployment ecohash-c01/llama", "spec.template.spec.containers[0].resources.limits_gpu", "unknown field"),
    ]


def test_every_error_of_an_object_is_reported():
    obj = with_changes(DEPLOYMENT, spec__replicas="2", spec__min_ready_seconds=5, metadata__labels={"tier": 1})
    del obj["spec"]["selector"]
    assert problems(obj) == [
        "Deployment ecohash-c01/llama: metadata.labels.tier: 1 is not of type 'string'",
        "Deployment ecohash-c01/llama: spec: 'selector' is a required property",
        "Deployment ecohash-c01/llama: spec.min_ready_seconds: unknown field",
        "Deployment ecohash-c01/llama: spec.replicas: '2' is not of type 'integer'",
    ]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        # A whole float is what Pulumi hands over for an int; the API server refuses it for int32.
        ({"spec__replicas": 2.0}, "spec.replicas: 2.0 is not of type 'integer'"),
        ({"spec__replicas": True}, "spec.replicas: True is not of type 'integer'"),
        ({"spec__paused": "yes"}, "spec.paused: 'yes' is not of type 'boolean'"),
        (
            {"spec__template__spec__containers__0__ports__0__containerPort": "8000"},
            "spec.template.spec.containers[0].ports[0].containerPort: '8000' is not of type 'integer'",
        ),
        (
            {"spec__template__spec__containers__0__readinessProbe__httpGet__port": 80.5},
            "spec.template.spec.containers[0].readinessProbe.httpGet.port: 80.5 is not of type 'string' or 'integer'",
        ),
        (
            {"spec__template__spec__containers__0__resources__limits": {"nvidia.com/gpu": [4]}},
            'spec.template.spec.containers[0].resources.limits["nvidia.com/gpu"]: [4] is not of type \'string\' or \'number\'',
        ),
        ({"metadata__labels": {"app.kubernetes.io/name": 7}}, 'metadata.labels["app.kubernetes.io/name"]: 7 is not of type \'string\''),
    ],
)
def test_a_wrong_type_is_reported(changes, expected):
    assert problems(with_changes(DEPLOYMENT, **changes)) == [f"Deployment ecohash-c01/llama: {expected}"]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        # The API server decodes these into int32 and int64 fields and refuses what overflows.
        ({"spec__replicas": 2**31}, "spec.replicas: 2147483648 is out of the int32 range "
                                    "(-2147483648 to 2147483647)"),
        ({"spec__replicas": -(2**31) - 1}, "spec.replicas: -2147483649 is out of the int32 range "
                                           "(-2147483648 to 2147483647)"),
        ({"spec__template__spec__terminationGracePeriodSeconds": 2**63},
         "spec.template.spec.terminationGracePeriodSeconds: 9223372036854775808 is out of the int64 "
         "range (-9223372036854775808 to 9223372036854775807)"),
    ],
)
def test_an_integer_beyond_its_format_is_reported(changes, expected):
    assert problems(with_changes(DEPLOYMENT, **changes)) == [f"Deployment ecohash-c01/llama: {expected}"]


def test_integers_at_the_bounds_of_their_format_pass():
    obj = with_changes(DEPLOYMENT, spec__replicas=2**31 - 1,
                       spec__template__spec__terminationGracePeriodSeconds=-(2**63))
    assert problems(obj) == []


def test_a_custom_resource_integer_beyond_its_format_is_reported():
    crd = crd_of({"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "nodes": {"type": "integer", "format": "int32"}}}}})
    assert problems(with_changes(POOL, spec={"nodes": 2**31}), (crd,)) == [
        "GpuPool ecohash-c01/h100: spec.nodes: 2147483648 is out of the int32 range "
        "(-2147483648 to 2147483647)"]


def test_null_int_or_string_and_quantity_count_as_unset():
    # The bundled schemas make both a oneOf of two nullable types, which null would fail.
    service = with_changes(VALID["Service"], spec__ports=[{"port": 80, "targetPort": None}])
    quota = with_changes(VALID["ResourceQuota"], spec__hard={"pods": None})
    assert problems(service) == [] and problems(quota) == []


def test_a_long_wrong_value_is_shortened_in_the_message():
    obj = with_changes(DEPLOYMENT, spec__template__spec__containers={"name": "x" * 100})
    [problem] = problems(obj)
    assert problem == (
        "Deployment ecohash-c01/llama: spec.template.spec.containers: "
        "{'name': '" + "x" * 47 + "... is not of type 'array'"
    )


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (
            {"apiVersion": "ecohash.io/v1", "kind": "GpuPool", "metadata": {"name": "h100"}},
            "GpuPool h100: no schema for ecohash.io/v1 GpuPool in Kubernetes 1.35 and no CRD defines it",
        ),
        # kubernetes_validate names files by the group's first label only: apps.example.com
        # would otherwise be checked as a built-in apps/v1 Deployment.
        (
            {"apiVersion": "apps.example.com/v1", "kind": "Deployment", "metadata": {"name": "x"}},
            "Deployment x: no schema for apps.example.com/v1 Deployment in Kubernetes 1.35 and no CRD defines it",
        ),
        # A sub-object's schema file is no schema for a top-level object of that name.
        (
            {"apiVersion": "v1", "kind": "Container", "name": "x"},
            "Container (no name): no schema for v1 Container in Kubernetes 1.35 and no CRD defines it",
        ),
        (
            {"apiVersion": "apps/v1", "kind": "deployment", "metadata": {"name": "x", "namespace": "n"}},
            "deployment n/x: no schema for apps/v1 deployment in Kubernetes 1.35 and no CRD defines it",
        ),
    ],
)
def test_an_unknown_kind_is_a_problem(obj, expected):
    assert problems(obj) == [expected]


def test_missing_api_version_or_kind_is_a_problem():
    assert problems({"metadata": {"name": "x"}}) == [
        "object x: 'apiVersion' is required and must be a non-empty string",
        "object x: 'kind' is required and must be a non-empty string",
    ]
    assert problems({"apiVersion": "", "kind": "ConfigMap"}) == [
        "ConfigMap (no name): 'apiVersion' is required and must be a non-empty string"
    ]


def test_something_other_than_a_mapping_is_a_problem():
    assert problems(["not", "an", "object"]) == [
        "object (not a mapping): ['not', 'an', 'object'] is not a Kubernetes object"
    ]


def test_supported_versions_are_the_bundled_ones_in_numeric_order():
    versions = supported_versions()
    assert versions[0] == "1.25" and "1.35" in versions
    numbers = [tuple(map(int, v.split("."))) for v in versions]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)


@pytest.mark.parametrize("version", ["1.24", "1.9", "2.0", "abc", "", "1.035", "1"])
def test_an_unsupported_version_is_refused_naming_the_range(version):
    first, last = supported_versions()[0], supported_versions()[-1]
    with pytest.raises(InvalidInputError) as raised:
        ManifestValidator(version)
    assert str(raised.value) == (
        f"unsupported Kubernetes version {version!r}: the bundled schemas cover {first} to {last} "
        f"(give MAJOR.MINOR, e.g. {last})"
    )


@pytest.mark.parametrize(("version", "minor"), [("1.25", "1.25"), ("v1.35", "1.35"), (" 1.36.2", "1.36")])
def test_a_version_may_have_a_v_or_a_patch_number(version, minor):
    validator = ManifestValidator(version)
    assert validator.kubernetes_version == minor
    assert validator.validate(VALID["ConfigMap"]) == []


def test_a_custom_resource_of_a_crd_passes():
    assert problems(POOL, (CRD,)) == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"spec__max_unavailable": 1}, ["spec.max_unavailable: unknown field"]),
        ({"spec__mode": "mining"}, ["spec.mode: 'mining' is not one of ['inference', 'training']"]),
        ({"spec": {"sku": "n4"}}, ["spec: 'nodes' is a required property"]),
        ({"spec__nodes": 1.0}, ["spec.nodes: 1.0 is not of type 'integer'"]),
        ({"spec__nodes": -1}, ["spec.nodes: -1 is less than the minimum of 0"]),
        ({"spec__selector": {"rack": 1}}, ["spec.selector.rack: 1 is not of type 'string'"]),
        ({"spec__note": 3}, ["spec.note: 3 is not of type 'string'"]),
        ({"spec__maxUnavailable": 0.5}, ["spec.maxUnavailable: 0.5 is not of type 'integer' or 'string'"]),
        ({"replicas": 2}, ["replicas: unknown field"]),
        ({"metadata__label": {}}, ["metadata.label: unknown field"]),
    ],
)
def test_a_custom_resource_is_checked_strictly(changes, expected):
    assert problems(with_changes(POOL, **changes), (CRD,)) == [f"GpuPool ecohash-c01/h100: {e}" for e in expected]


def test_a_custom_resource_needs_a_name():
    obj = with_changes(POOL, metadata={"namespace": NS, "generateName": "h100-"})
    assert problems(obj, (CRD,)) == ["GpuPool (no name): metadata: 'name' is a required property"]


def test_a_custom_resource_without_metadata_is_a_problem():
    obj = {key: value for key, value in POOL.items() if key != "metadata"}
    assert problems(obj, (CRD,)) == ["GpuPool (no name): 'metadata' is a required property"]


def test_crd_quirks_are_honoured():
    obj = with_changes(
        POOL,
        spec__maxUnavailable=1,
        spec__note=None,
        spec__priority=None,
        spec__tuning={"any": {"thing": [1, "two"]}},
        status={"free_form": True},
    )
    assert problems(obj, (CRD,)) == []


def crd_of(open_api: dict) -> dict:
    """CRD with the GpuPool names and one version, v1, with the given schema."""
    crd = copy.deepcopy(CRD)
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"] = open_api
    return crd


def test_crd_bounds_embedded_objects_and_value_validations():
    crd = crd_of(
        {
            "type": "object",
            "properties": {
                "metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 4}}},
                "spec": {
                    "type": "object",
                    "properties": {
                        "ratio": {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 1, "exclusiveMaximum": False},
                        "pod": {"type": "object", "x-kubernetes-embedded-resource": True, "x-kubernetes-preserve-unknown-fields": True},
                        "opaque": {"type": "object"},
                        "a": {"type": "string"},
                        "b": {"type": "string"},
                    },
                    # Value validations name fields without declaring them: they must not close the object.
                    "anyOf": [{"required": ["a"]}, {"properties": {"b": {"minLength": 2}}, "required": ["b"]}],
                },
            },
        }
    )
    good = with_changes(POOL, spec={"ratio": 1, "b": "bb", "pod": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}}})
    bad = with_changes(
        POOL,
        metadata__name="h100-pool",
        spec={"ratio": 0, "opaque": {"k": 1}, "pod": {"metadata": {"labelz": {}}, "spec": {}}},
    )
    assert problems(good, (crd,)) == []
    assert problems(bad, (crd,)) == [
        "GpuPool ecohash-c01/h100-pool: metadata.name: 'h100-pool' is too long",
        "GpuPool ecohash-c01/h100-pool: spec: {'ratio': 0, 'opaque': {'k': 1}, 'pod': {'metadata': {'la... is not valid under any of the given schemas",
        # Pruning keeps nothing of an object that declares no fields and preserves none.
        "GpuPool ecohash-c01/h100-pool: spec.opaque.k: unknown field",
        # An embedded object's metadata is ObjectMeta, however open the rest of it is.
        "GpuPool ecohash-c01/h100-pool: spec.pod.metadata.labelz: unknown field",
        "GpuPool ecohash-c01/h100-pool: spec.ratio: 0 is less than or equal to the minimum of 0",
    ]


def test_only_the_versions_a_crd_defines_are_known():
    obj = with_changes(POOL, apiVersion="ecohash.io/v2")
    assert problems(obj, (CRD,)) == [
        "GpuPool ecohash-c01/h100: no schema for ecohash.io/v2 GpuPool in Kubernetes 1.35 and no CRD defines it"
    ]


def test_a_crd_without_the_fields_that_identify_its_kind_is_refused():
    broken = with_changes(CRD, spec__names={"plural": "gpupools"})
    with pytest.raises(InvalidInputError) as raised:
        ManifestValidator("1.35", [broken])
    assert str(raised.value) == (
        "CustomResourceDefinition gpupools.ecohash.io: no field 'kind'; an apiextensions.k8s.io/v1 "
        "CustomResourceDefinition needs spec.group, spec.names.kind and spec.versions[].name and .schema.openAPIV3Schema"
    )


def test_schemas_are_read_and_compiled_once_however_many_objects(monkeypatch):
    validation._registry.cache_clear()
    validation._bundled_validator.cache_clear()
    reads: Counter[str] = Counter()
    compiled: Counter[str] = Counter()
    read_schema, custom_resource_schema = validation._read_schema, validation._custom_resource_schema

    def counting_read(schema_dir: str, filename: str):
        reads[filename] += 1
        return read_schema(schema_dir, filename)

    def counting_compile(api_version: str, kind: str, open_api: dict):
        compiled[kind] += 1
        return custom_resource_schema(api_version, kind, open_api)

    monkeypatch.setattr(validation, "_read_schema", counting_read)
    monkeypatch.setattr(validation, "_custom_resource_schema", counting_compile)
    objects = [with_changes(DEPLOYMENT, metadata__name=f"d{i}") for i in range(50)] + [POOL] * 20
    for _ in range(2):
        assert validate_manifests(objects, "1.35", [CRD]) == []
    assert reads == Counter({"_definitions.json": 1, "deployment-apps-v1.json": 1, "gpupool-ecohash-v1.json": 1})
    assert compiled == Counter({"GpuPool": 2})  # once per validator: CRDs belong to a ManifestValidator


def test_problems_are_sorted_whatever_the_key_order():
    obj = with_changes(DEPLOYMENT, spec__replicas="2", spec__zz_extra=1, metadata__aa_extra=1)
    reordered = dict(reversed(list(obj.items())))
    reordered["spec"] = dict(reversed(list(obj["spec"].items())))
    found = ManifestValidator("1.35").validate(obj)
    assert found == sorted(found) and len(found) == 3
    assert ManifestValidator("1.35").validate(reordered) == found


def test_validate_manifests_reports_every_object_sorted():
    bad_map = with_changes(VALID["ConfigMap"], data={"k": 1})
    bad_service = with_changes(VALID["Service"], spec__type="Cluster_IP", spec__cluster_ip="None")
    found = validate_manifests([bad_service, VALID["Namespace"], bad_map], "1.35")
    assert [str(p) for p in found] == [
        "ConfigMap ecohash-c01/cfg: data.k: 1 is not of type 'string'",
        "Service ecohash-c01/llama: spec.cluster_ip: unknown field",
    ]
