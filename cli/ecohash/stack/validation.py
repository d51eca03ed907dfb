"""Strict schema validation of rendered Kubernetes objects, before anything reaches a cluster.

No API server is reachable where ecohash renders, so the schemas bundled in the
kubernetes-validate package stand in for one. Four choices make the check worth running:

- Strict schemas only. The API server drops fields it does not know without a word, so a
  leftover snake_case key would silently lose its setting; here it is an error. Custom
  resources get the same treatment: their CRD schema is closed the way structural pruning
  would prune, and the server's own quirks (nullable, int-or-string) are honoured.
- Integer formats enforced: a value beyond an int32 or int64 field's range, which the API
  server refuses, is an error here, not an annotation JSON Schema would let pass.
- Every error of an object, not the first: one render run should show everything to fix.
- One compiled validator per (Kubernetes version, apiVersion, kind), cached for the process.
  kubernetes_validate.validate() re-reads its schemas on every call (~13 ms an object), which
  a render of thousands of objects cannot afford.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker, ValidationError
from jsonschema.protocols import Validator
from jsonschema.validators import extend
from referencing import Registry, Resource

from ecohash.errors import InvalidInputError

_SCHEMA_ROOT = resources.files("kubernetes_validate") / "kubernetes-json-schema"
_DEFINITIONS_URI = "https://kubernetes.io/api/_definitions.json"
_OBJECT_META_REF = f"{_DEFINITIONS_URI}#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_STRICT_DIR = re.compile(r"v(\d+)\.(\d+)\.\d+-local-strict")
_VERSION = re.compile(r"v?((?:0|[1-9]\d*)\.(?:0|[1-9]\d*))(?:\.\d+)?")
_PLAIN_KEY = re.compile(r"[A-Za-z_$][\w$-]*")


def _is_integer(_checker: object, instance: object) -> bool:
    # Draft 2020-12 counts 2.0 as an integer, but the API server's decoder refuses it for an
    # int32 field, and Pulumi hands numbers over as floats: exactly the slip to catch.
    return isinstance(instance, int) and not isinstance(instance, bool)


_StrictValidator = extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer),
)

# OpenAPI's integer formats, which the bundled schemas and CRDs mark: the API server decodes
# such a field into a Go int32 or int64 and refuses a value that overflows it. Draft 2020-12
# only annotates with `format`, so these are checked by a checker that knows nothing else.
_INTEGER_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


def _within(low: int, high: int, instance: object) -> bool:
    # Anything but an integer is the type check's to report.
    return not isinstance(instance, int) or low <= instance <= high


def _integer_format_checker() -> FormatChecker:
    checker = FormatChecker(formats=())
    for name, (low, high) in _INTEGER_RANGES.items():
        checker.checks(name)(functools.partial(_within, low, high))
    return checker


_INTEGER_FORMATS = _integer_format_checker()


@dataclass(frozen=True, order=True)
class ObjectProblem:
    """One schema violation in one object; str() gives the line a user reads."""

    object: str  # "Deployment ecohash-c01/llama": kind, then namespace/name or just name
    path: str  # where in the object, e.g. "spec.template.spec.containers[0].resources"; "" for the top
    message: str

    def __str__(self) -> str:
        where = f"{self.object}: {self.path}" if self.path else self.object
        return f"{where}: {self.message}"


@functools.cache
def _strict_dirs() -> dict[str, str]:
    """Bundled strict schema folders by MAJOR.MINOR, oldest first."""
    found: dict[tuple[int, int], str] = {}
    for entry in _SCHEMA_ROOT.iterdir():
        if match := _STRICT_DIR.fullmatch(entry.name):
            found[(int(match[1]), int(match[2]))] = entry.name
    return {f"{major}.{minor}": name for (major, minor), name in sorted(found.items())}


def supported_versions() -> tuple[str, ...]:
    """The Kubernetes versions (MAJOR.MINOR) whose schemas the installed kubernetes-validate bundles."""
    return tuple(_strict_dirs())


def _supported(kubernetes_version: str) -> str:
    """The version as MAJOR.MINOR, if its schemas are bundled."""
    # Looked up, never compared as strings: kubernetes_validate does that and crashes below 1.25.
    match = _VERSION.fullmatch(kubernetes_version.strip())
    versions = supported_versions()
    if not match or match[1] not in versions:
        raise InvalidInputError(
            f"unsupported Kubernetes version {kubernetes_version!r}: the bundled schemas cover "
            f"{versions[0]} to {versions[-1]} (give MAJOR.MINOR, e.g. {versions[-1]})"
        )
    return match[1]


def _read_schema(schema_dir: str, filename: str) -> dict[str, Any]:
    """One bundled schema file, parsed."""
    schema: dict[str, Any] = json.loads((_SCHEMA_ROOT / schema_dir / filename).read_text(encoding="utf-8"))
    return schema


@functools.cache
def _registry(schema_dir: str) -> Registry:
    """Every definition of one Kubernetes version (1.5 MB of JSON), parsed once."""
    definitions = _read_schema(schema_dir, "_definitions.json")
    # Both are a oneOf of two nullable types, so null matches both branches and fails, though the
    # API server reads null as "not set" here as everywhere else. A list of types says the same
    # without that slip, and a wrong value gets a plain "is not of type" message.
    defs = definitions["$defs"]
    defs["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] = {"type": ["string", "integer", "null"]}
    defs["io.k8s.apimachinery.pkg.api.resource.Quantity"] = {"type": ["string", "number", "null"]}
    registry: Registry = Registry().with_resource(_DEFINITIONS_URI, Resource.from_contents(definitions))
    return registry.crawl()


@functools.cache
def _bundled_validator(schema_dir: str, api_version: str, kind: str) -> Validator | None:
    # kubernetes_validate's file naming: the group's first label, so rbac.authorization.k8s.io/v1
    # Role is role-rbac-v1.json. That name alone also fits apps.example.com/v1 Deployment and
    # sub-objects such as v1 Container, so the file must also list the object's group/version/kind.
    group, _, version = api_version.rpartition("/")
    short_group = group.split(".", 1)[0]
    filename = f"{kind.lower()}-{short_group}-{version}.json" if group else f"{kind.lower()}-{version}.json"
    try:
        schema = _read_schema(schema_dir, filename)
    except FileNotFoundError:
        return None
    wanted = {"group": group, "version": version, "kind": kind}
    if wanted not in schema.get("x-kubernetes-group-version-kind", []):
        return None
    return _StrictValidator(schema, registry=_registry(schema_dir), format_checker=_INTEGER_FORMATS)


def _crd_schema(node: Mapping[str, Any], value_validation: bool = False) -> dict[str, Any]:
    """A CRD's structural OpenAPI v3 schema as JSON Schema 2020-12, closed where pruning would prune.

    Inside allOf/anyOf/oneOf/not (value_validation) a schema only adds constraints to fields
    declared elsewhere, so it is converted but never closed.
    """
    # Unknown keywords (nullable, x-kubernetes-*, format int-or-string) are ignored by jsonschema,
    # so they may stay; only their meaning has to be added.
    schema = dict(node)
    if "properties" in node:
        schema["properties"] = {
            name: _crd_schema(sub, value_validation) for name, sub in node["properties"].items()
        }
    if isinstance(node.get("items"), Mapping):
        schema["items"] = _crd_schema(node["items"], value_validation)
    if isinstance(node.get("additionalProperties"), Mapping):
        schema["additionalProperties"] = _crd_schema(node["additionalProperties"], value_validation)
    for junctor in ("allOf", "anyOf", "oneOf"):
        if junctor in node:
            schema[junctor] = [_crd_schema(sub, value_validation=True) for sub in node[junctor]]
    if "not" in node:
        schema["not"] = _crd_schema(node["not"], value_validation=True)
    # OpenAPI 3.0 spells an exclusive bound as a boolean next to the bound itself.
    for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        if isinstance(node.get(exclusive), bool):
            del schema[exclusive]
            if node[exclusive] and bound in node:
                schema[exclusive] = schema.pop(bound)
    if node.get("x-kubernetes-int-or-string") or node.get("format") == "int-or-string":
        schema["type"] = ["integer", "string"]
        # controller-gen restates it as this anyOf, which would report every wrong value twice.
        if sorted(map(str, schema.get("anyOf", []))) == ["{'type': 'integer'}", "{'type': 'string'}"]:
            del schema["anyOf"]
    if node.get("x-kubernetes-embedded-resource"):
        # The server keeps apiVersion, kind and metadata of an embedded object even when the
        # CRD does not list them, and prunes that metadata to ObjectMeta.
        schema["properties"] = {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"$ref": _OBJECT_META_REF},
            **schema.get("properties", {}),
        }
    if node.get("nullable"):
        if "type" in schema:
            types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            schema["type"] = [*types, "null"]
        if "enum" in schema:
            schema["enum"] = [*schema["enum"], None]
    is_object = "properties" in schema or schema.get("type") == "object"
    if (
        is_object
        and not value_validation
        and "additionalProperties" not in schema
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        schema["additionalProperties"] = False
    return schema


def _custom_resource_schema(api_version: str, kind: str, open_api: Mapping[str, Any]) -> dict[str, Any]:
    """The whole custom resource: its CRD schema, the type fields, and metadata checked as ObjectMeta."""
    schema = _crd_schema({"type": "object", **open_api})
    properties = schema.setdefault("properties", {})
    object_meta = {"type": "object", "required": ["name"], "$ref": _OBJECT_META_REF}
    # A CRD may only narrow name and generateName; the rest of metadata is always ObjectMeta.
    narrowed = open_api.get("properties", {}).get("metadata")
    properties["metadata"] = (
        {"allOf": [object_meta, _crd_schema(narrowed, value_validation=True)]} if narrowed else object_meta
    )
    properties["apiVersion"] = {"type": "string"}
    properties["kind"] = {"type": "string"}
    schema["required"] = sorted({*schema.get("required", ()), "apiVersion", "kind", "metadata"})
    return schema


def _crd_versions(crd: Mapping[str, Any]) -> Iterable[tuple[str, str, Mapping[str, Any]]]:
    """(apiVersion, kind, openAPIV3Schema) for each version a CustomResourceDefinition defines."""
    try:
        spec = crd["spec"]
        kind = spec["names"]["kind"]
        return [
            (f"{spec['group']}/{version['name']}", kind, version["schema"]["openAPIV3Schema"])
            for version in spec["versions"]
        ]
    except (KeyError, TypeError) as error:
        detail = f"no field {error}" if isinstance(error, KeyError) else str(error)
        raise InvalidInputError(
            f"{_label(crd)}: {detail}; an apiextensions.k8s.io/v1 CustomResourceDefinition needs "
            "spec.group, spec.names.kind and spec.versions[].name and .schema.openAPIV3Schema"
        ) from None


def _label(obj: Mapping[str, Any]) -> str:
    kind = obj.get("kind") if isinstance(obj.get("kind"), str) and obj.get("kind") else "object"
    metadata = obj.get("metadata")
    if not isinstance(metadata, Mapping):
        metadata = {}
    name, namespace = metadata.get("name"), metadata.get("namespace")
    if not name:
        return f"{kind} (no name)"
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


def _path(parts: Iterable[str | int]) -> str:
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            text += f".{part}" if text else part
        else:
            # Label and annotation keys hold dots and slashes; quoting keeps the path unambiguous.
            text += f"[{json.dumps(part)}]"
    return text


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _problems(label: str, error: ValidationError) -> list[ObjectProblem]:
    where = list(error.absolute_path)
    if error.validator == "additionalProperties" and error.validator_value is False:
        # One problem per unknown key, at the key itself, so each reads like kubectl's "unknown field".
        known = error.schema.get("properties", {})
        unknown = [key for key in error.instance if key not in known]
        return [ObjectProblem(label, _path([*where, key]), "unknown field") for key in unknown]
    if error.validator == "type":
        # The bundled schemas allow null almost everywhere; naming it would only distract.
        wanted = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        types = " or ".join(repr(t) for t in wanted if t != "null")
        return [ObjectProblem(label, _path(where), f"{_short(error.instance)} is not of type {types}")]
    if error.validator == "format" and error.validator_value in _INTEGER_RANGES:
        low, high = _INTEGER_RANGES[error.validator_value]
        return [ObjectProblem(label, _path(where), f"{error.instance} is out of the "
                              f"{error.validator_value} range ({low} to {high})")]
    # jsonschema starts most messages with the whole offending value, which can be a whole spec.
    message, value = error.message, repr(error.instance)
    if message.startswith(value):
        message = _short(error.instance) + message[len(value) :]
    return [ObjectProblem(label, _path(where), message)]


class ManifestValidator:
    """Validates objects for one Kubernetes version, and for custom resources of the given CRDs."""

    def __init__(self, kubernetes_version: str, crds: Iterable[Mapping[str, Any]] = ()) -> None:
        self.kubernetes_version = _supported(kubernetes_version)
        self._schema_dir = _strict_dirs()[self.kubernetes_version]
        self._crd_schemas = {
            (api_version, kind): open_api
            for crd in crds
            for api_version, kind, open_api in _crd_versions(crd)
        }
        self._crd_validators: dict[tuple[str, str], Validator] = {}

    def validate(self, obj: Mapping[str, Any]) -> list[ObjectProblem]:
        """Every problem of one object, sorted; an empty list when it is valid."""
        if not isinstance(obj, Mapping):
            return [ObjectProblem("object (not a mapping)", "", f"{_short(obj)} is not a Kubernetes object")]
        label = _label(obj)
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if not (isinstance(api_version, str) and api_version and isinstance(kind, str) and kind):
            return sorted(
                ObjectProblem(label, "", f"'{field}' is required and must be a non-empty string")
                for field, value in (("apiVersion", api_version), ("kind", kind))
                if not (isinstance(value, str) and value)
            )
        validator = self._validator(api_version, kind)
        if validator is None:
            message = (
                f"no schema for {api_version} {kind} in Kubernetes {self.kubernetes_version} "
                "and no CRD defines it"
            )
            return [ObjectProblem(label, "", message)]
        return sorted(problem for error in validator.iter_errors(obj) for problem in _problems(label, error))

    def _validator(self, api_version: str, kind: str) -> Validator | None:
        bundled = _bundled_validator(self._schema_dir, api_version, kind)
        if bundled is not None:
            return bundled
        key = (api_version, kind)
        if key not in self._crd_schemas:
            return None
        if key not in self._crd_validators:
            schema = _custom_resource_schema(api_version, kind, self._crd_schemas[key])
            self._crd_validators[key] = _StrictValidator(schema, registry=_registry(self._schema_dir),
                                                         format_checker=_INTEGER_FORMATS)
        return self._crd_validators[key]


def validate_manifests(
    objects: Iterable[Mapping[str, Any]], kubernetes_version: str, crds: Iterable[Mapping[str, Any]] = ()
) -> list[ObjectProblem]:
    """Every problem of every object, sorted by object, then path, then message."""
    validator = ManifestValidator(kubernetes_version, crds)
    return sorted(problem for obj in objects for problem in validator.validate(obj))
