"""The built-in catalog of GPU models and node SKUs (catalog.yaml beside this file).

Sites merge their own `spec.gpu_models` and `spec.skus` over it, field by field.
docs/catalog.md gives the source of every figure.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml


@cache
def builtin_catalog() -> dict[str, dict[str, dict[str, Any]]]:
    """The raw catalog: {"gpu_models": {key: fields}, "skus": {key: fields}}."""
    text = resources.files("ecohash.inventory").joinpath("catalog.yaml").read_text("utf-8")
    data = yaml.safe_load(text)
    return {"gpu_models": data["gpu_models"], "skus": data["skus"]}
