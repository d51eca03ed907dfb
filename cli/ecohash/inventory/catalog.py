"""The built-in catalog of GPU models and node SKUs (catalog.yaml beside this file).

Sites merge their own `spec.gpu_models` and `spec.skus` over it, field by field; the
power -> throughput curves (grid/throughput.py reads them) are the catalog's alone.
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
    data = _catalog_file()
    return {"gpu_models": data["gpu_models"], "skus": data["skus"]}


@cache
def throughput_curves() -> dict[str, dict[str, Any]]:
    """The raw power -> throughput curves, by GPU model key (see catalog.yaml)."""
    curves: dict[str, dict[str, Any]] = _catalog_file()["throughput"]
    return curves


@cache
def _catalog_file() -> dict[str, Any]:
    text = resources.files("ecohash.inventory").joinpath("catalog.yaml").read_text("utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    return data
