"""How many more nodes of a SKU a site can take: the question before buying hardware.

New nodes are assumed to go into new racks of an existing container (so no rack
limit applies to them) and to run at the given cap, without lowering any cap the
current plan already sets. Under the budget rule that is exactly the number that
fits in the headroom of the container and of the site.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from ecohash.budget import Plan
from ecohash.errors import InvalidInputError
from ecohash.inventory.messages import suggest
from ecohash.inventory.model import GpuModel, Sku


@dataclass(frozen=True)
class ContainerRoom:
    name: str
    headroom_w: Fraction
    nodes: int  # more nodes this container can take, given the site's headroom too


@dataclass(frozen=True)
class Capacity:
    plan: Plan
    sku_name: str
    sku: Sku
    cap_w: int | None  # per-GPU cap the new nodes run at; None for CPU-only nodes
    node_draw_w: int
    containers: tuple[ContainerRoom, ...]
    site_headroom_w: Fraction
    site_nodes: int  # more nodes the existing containers can take together
    grid_nodes: int  # more nodes the site budget alone allows, were containers added


def capacity(plan: Plan, sku_name: str, cap_w: int | None = None) -> Capacity:
    """Room for more nodes of `sku_name` at `cap_w` (default: the GPU's TDP)."""
    site = plan.site
    sku = site.skus.get(sku_name)
    if sku is None:
        raise InvalidInputError(f"unknown sku {sku_name!r}{suggest(sku_name, sorted(site.skus))}")
    cap_w = _checked_cap(site.gpu_models[sku.gpu] if sku.gpu else None, sku_name, cap_w)
    node_draw = sku.host_w + sku.gpus * (cap_w or 0)
    if node_draw <= 0:
        raise InvalidInputError(f"sku {sku_name!r} draws no power, so any number fits")

    site_headroom = plan.site_domain.headroom_w or Fraction(0)
    grid_nodes = _fit(site_headroom, node_draw)
    rooms = []
    for container in plan.containers:
        headroom = container.headroom_w or Fraction(0)
        rooms.append(ContainerRoom(container.name, headroom,
                                   min(_fit(headroom, node_draw), grid_nodes)))
    site_nodes = min(sum(_fit(c.headroom_w or Fraction(0), node_draw) for c in plan.containers),
                     grid_nodes)
    return Capacity(plan, sku_name, sku, cap_w, node_draw, tuple(rooms), site_headroom,
                    site_nodes, grid_nodes)


def _checked_cap(gpu: GpuModel | None, sku_name: str, cap_w: int | None) -> int | None:
    if gpu is None:
        if cap_w is not None:
            raise InvalidInputError(f"sku {sku_name!r} has no GPUs, so --cap does not apply")
        return None
    if cap_w is None:
        return gpu.tdp_w
    if not gpu.min_cap_w <= cap_w <= gpu.tdp_w:
        raise InvalidInputError(
            f"--cap {cap_w} is outside what sku {sku_name!r} can run at: its "
            f"{gpu.product or 'GPU'} takes caps from {gpu.min_cap_w} to {gpu.tdp_w} W"
        )
    return cap_w


def _fit(headroom_w: Fraction, node_draw_w: int) -> int:
    return max(0, math.floor(headroom_w / node_draw_w))
