"""The inventory key reference in docs/inventory.md, generated from the JSON Schema.

Generated so the docs can never drift from the model: scripts/gen-docs rewrites the
part between the markers, and a test fails when the committed file is stale.
"""

from __future__ import annotations

import json
from typing import Any

from ecohash.inventory.model import PATTERN_NAMES, site_json_schema

BEGIN = "<!-- BEGIN GENERATED: scripts/gen-docs -->"
END = "<!-- END GENERATED -->"

# The order a reader meets these sections in a site file.
_SECTIONS = ["SiteFile", "Metadata", "Spec", "Power", "Curtailment", "CurtailmentProgram", "ScheduleWindow",
             "PeakAlert", "PriceTrigger", "OpenAdr", "Network",
             "GpuModelFields", "SkuFields", "Kubernetes", "Container", "Rack", "NodeEntry",
             "Provisioning", "Ssh", "Mirror", "Rollout", "InferenceService", "Replicas", "Placement",
             "SecretRef", "Autoscaling"]
_TITLES = {"SiteFile": "Site file (top level)", "Curtailment": "spec.power.curtailment",
           "CurtailmentProgram": "spec.power.curtailment.programs[]",
           "ScheduleWindow": "spec.power.curtailment.programs[].windows[]",
           "PeakAlert": "spec.power.curtailment.programs[].alert",
           "PriceTrigger": "spec.power.curtailment.programs[].price",
           "OpenAdr": "spec.power.curtailment.openadr",
           "GpuModelFields": "spec.gpu_models.<key>",
           "SkuFields": "spec.skus.<key>", "Provisioning": "spec.provisioning",
           "Ssh": "spec.provisioning.ssh",
           "Mirror": "spec.provisioning.mirror", "Rollout": "spec.provisioning.rollout",
           "InferenceService": "spec.services[]", "Replicas": "spec.services[].replicas",
           "Placement": "spec.services[].placement", "SecretRef": "spec.services[].token_secret",
           "Autoscaling": "spec.services[].autoscaling"}


def schema_text() -> str:
    return json.dumps(site_json_schema(), indent=2) + "\n"


def reference_markdown() -> str:
    schema = site_json_schema()
    definitions = {**schema["$defs"], "SiteFile": schema}
    parts = [BEGIN]
    for name in _SECTIONS:
        model = definitions[name]
        parts.append(f"\n### {_TITLES.get(name, name)}\n")
        if model.get("description"):
            parts.append(model["description"].strip().splitlines()[0] + "\n")
        parts.append("| key | type | required | description |")
        parts.append("|---|---|---|---|")
        required = set(model.get("required", []))
        for key, prop in model["properties"].items():
            default = "" if key in required or "default" not in prop else \
                f" (default `{json.dumps(prop['default'])}`)"
            parts.append(f"| `{key}` | {_type(prop)} | {'yes' if key in required else 'no'}{default} "
                         f"| {prop.get('description', '')} |")
    parts.append(END)
    return "\n".join(parts) + "\n"


def _type(prop: dict[str, Any]) -> str:
    if "$ref" in prop:
        target = prop["$ref"].rsplit("/", 1)[-1]
        title = _TITLES.get(target, target)
        return f"[{title}](#{_anchor(title)})"
    if "anyOf" in prop:
        return " or ".join(_type(p) for p in prop["anyOf"] if p.get("type") != "null")
    if "enum" in prop or "const" in prop:
        values = prop.get("enum", [prop.get("const")])
        return "one of " + ", ".join(f"`{v}`" for v in values)
    kind = prop.get("type")
    if kind == "array":
        return f"list of {_type(prop['items'])}"
    if kind == "object":
        # pydantic writes a dict whose keys have a pattern as patternProperties.
        (key, value), = prop.get("patternProperties", {"": prop.get("additionalProperties")}).items()
        return f"map of {PATTERN_NAMES.get(key, 'name')} to {_type(value)}"
    bounds = [f"{symbol} {prop[key]}" for key, symbol in (
        ("exclusiveMinimum", ">"), ("minimum", "≥"), ("exclusiveMaximum", "<"), ("maximum", "≤"),
    ) if key in prop]
    text = {"integer": "integer", "number": "number", "string": "string"}.get(str(kind), str(kind))
    if prop.get("format") == "ipv4":
        text = "IPv4 address"
    elif kind == "string" and prop.get("pattern") in PATTERN_NAMES:
        text = PATTERN_NAMES[prop["pattern"]]
    return text + (f" ({', '.join(bounds)})" if bounds else "")


def _anchor(title: str) -> str:
    return "".join(c for c in title.lower().replace(" ", "-") if c.isalnum() or c in "-_")


def render_into(document: str) -> str:
    """`document` with the text between the markers replaced by a fresh reference."""
    head, _, rest = document.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return head + reference_markdown().rstrip("\n") + tail
