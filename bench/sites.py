"""Generate realistic ecohash site files of N nodes, for the scaling benchmarks.

The files are meant to cost what a real site of that size costs: every node is an
explicit entry (no `count:` shorthand, so the YAML grows with N), one container per
~200 nodes in racks of 10, five container kinds with different SKUs and cooling, a
Kubernetes control plane, inference services, and budgets chosen so that racks and
containers really cap (the compiler does its work) while the site stays feasible.

    .venv/bin/python bench/sites.py --sizes 100,1000 /tmp/bench-sites

Output is a pure function of N: the same N always gives the same bytes.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

DEFAULT_SIZES = (100, 1_000, 10_000, 50_000)
NODES_PER_CONTAINER = 200
NODES_PER_RACK = 10
CONTROL_PLANE = 3  # etcd quorum; cpu-1u nodes in the first container
MGMT_CIDR = IPv4Network("10.0.0.0/8")
CONTAINER_BLOCK = 4096  # a /20 of mgmt addresses per container
RACK_BLOCK = 64  # addresses per rack inside its container's block
FIRST_HOST = 10  # offset of a rack's first node in its block
PUE = 1.15  # written verbatim; the grid is sized from it below
PUE_PERMILLE = 1150
RESERVE_PCT = 5


@dataclass(frozen=True)
class SkuFigures:
    """The catalog figures the generator needs to size budgets (docs/catalog.md)."""

    gpu: str | None
    gpus: int
    host_w: int
    tdp_w: int
    min_cap_w: int

    @property
    def draw_w(self) -> int:
        return self.host_w + self.gpus * self.tdp_w


# Kept in step with cli/ecohash/inventory/catalog.yaml; `ecohash plan` on the output is
# the check that they still agree (an infeasible site exits 2).
SKUS = {
    "hgx-h100-8": SkuFigures("h100-sxm", 8, 4600, 700, 200),
    "dgx-h100": SkuFigures("h100-sxm", 8, 4600, 700, 200),
    "hgx-h200-8": SkuFigures("h200-sxm", 8, 4600, 700, 200),
    "l40s-8": SkuFigures("l40s", 8, 1800, 350, 100),
    "l40s-4": SkuFigures("l40s", 4, 1000, 350, 100),
    "rtx4090-8": SkuFigures("rtx-4090", 8, 1400, 450, 150),
    "h100-nvl-4": SkuFigures("h100-nvl", 4, 1000, 400, 200),
    "h100-pcie-4": SkuFigures("h100-pcie", 4, 1000, 350, 200),
    "hgx-b200-8": SkuFigures("b200", 8, 6300, 1000, 200),
    "dgx-b200": SkuFigures("b200", 8, 6300, 1000, 200),
    "cpu-1u": SkuFigures(None, 0, 500, 0, 0),
}


@dataclass(frozen=True)
class Kind:
    """A container design: its SKU pattern, cooling, and which limit binds."""

    name: str
    cooling: str
    skus: tuple[str, ...]  # node k of a rack gets skus[k % len(skus)]
    rack_kw: int | None  # a fixed busway/PDU limit per rack (binds on full racks when set low)
    rack_cut: float | None  # or: every other rack limited to this share of its TDP draw
    cooling_share: float  # container cooling_kw as a share of its draw at TDP (< 1 binds)


# Cycled over the containers, so every site of 5+ containers has all five.
KINDS = (
    # 10 x 10.2 kW HGX H100 per rack on 95 kW busway taps: every full rack caps at 612 W.
    Kind("hydro H100", "hydro", ("hgx-h100-8", "hgx-h100-8", "hgx-h100-8", "dgx-h100"),
         95, None, 1.10),
    # Immersion tanks without rack limits; the dry coolers bind: the container caps.
    Kind("immersion H200", "immersion", ("hgx-h200-8",), None, None, 0.95),
    # Air-cooled L40S, 8- and 4-GPU boxes on 50 kW PDUs: nothing binds.
    Kind("air L40S", "air", ("l40s-8", "l40s-4"), 50, None, 1.10),
    # Air-cooled mixed PCIe servers; every other rack sits on an old PDU at 92% of TDP.
    Kind("air PCIe mix", "air", ("rtx4090-8", "h100-nvl-4", "h100-pcie-4", "rtx4090-8", "h100-nvl-4"),
         None, 0.92, 1.10),
    # 10 x 14.3 kW B200 per rack on 130 kW taps: every full rack caps at 837 W.
    Kind("hydro B200", "hydro", ("hgx-b200-8", "dgx-b200"), 130, None, 1.10),
)

# (name, GPU model, GPUs per replica, extra YAML fields); only services whose GPU model
# the site has are written, since a service that fits nowhere is invalid.
SERVICES = (
    ("llama-70b", "meta-llama/Llama-3.3-70B-Instruct", "h100-sxm", 4,
     "replicas: {min: 2, max: 40}\n      max_model_len: 32768\n      token_secret: {name: hf-token}\n"
     "      autoscaling: {queue_depth: 8}\n      load_timeout_s: 2400"),
    ("r1-distill-70b", "deepseek-ai/DeepSeek-R1-Distill-Llama-70B", "h200-sxm", 2,
     "replicas: {min: 4, max: 80}"),
    ("llama-8b", "meta-llama/Llama-3.1-8B-Instruct", "l40s", 1,
     "replicas: {min: 4, max: 200}\n      token_secret: {name: hf-token}"),
    ("mistral-small", "mistralai/Mistral-Small-24B-Instruct-2501", "h100-nvl", 2,
     "served_model_name: mistral-small\n      replicas: {min: 1, max: 40}"),
    ("deepseek-v3", "deepseek-ai/DeepSeek-V3", "b200", 8,
     "replicas: {min: 1, max: 20}\n      shm_gib: 64\n      memory_gib_per_gpu: 128"),
)


@dataclass(frozen=True)
class RackPlan:
    name: str
    power_kw: int | None
    nodes: tuple[tuple[str, str, IPv4Address], ...]  # (name, sku, mgmt_ip)


@dataclass(frozen=True)
class ContainerPlan:
    name: str
    kind: Kind
    power_kw: int
    cooling_kw: int
    racks: tuple[RackPlan, ...]


def containers_for(total: int) -> list[ContainerPlan]:
    """The site's containers: `total` nodes in all, control plane included."""
    if total < CONTROL_PLANE + 1:
        raise ValueError(f"a site needs at least {CONTROL_PLANE + 1} nodes")
    count = max(1, total // NODES_PER_CONTAINER)
    gpu_nodes = total - CONTROL_PLANE
    width = max(3, len(str(count)))
    plans = []
    for ci in range(count):
        # The first containers take the remainder, one node each.
        nodes_here = gpu_nodes // count + (1 if ci < gpu_nodes % count else 0)
        plans.append(_container(ci, f"c{ci + 1:0{width}d}", KINDS[ci % len(KINDS)], nodes_here))
    return plans


def _container(ci: int, name: str, kind: Kind, gpu_nodes: int) -> ContainerPlan:
    block = int(MGMT_CIDR.network_address) + (ci + 1) * CONTAINER_BLOCK
    racks: list[RackPlan] = []
    if ci == 0:
        racks.append(RackPlan("cp", None, tuple(
            (f"{name}-cp-n{k + 1:02d}", "cpu-1u", IPv4Address(block + FIRST_HOST + k))
            for k in range(CONTROL_PLANE))))
    rack_count = math.ceil(gpu_nodes / NODES_PER_RACK)
    for ri in range(rack_count):
        slot = len(racks)
        if (slot + 1) * RACK_BLOCK > CONTAINER_BLOCK:
            raise ValueError(f"container {name}: too many racks for its /20 of addresses")
        size = min(NODES_PER_RACK, gpu_nodes - ri * NODES_PER_RACK)
        rack_name = f"r{ri + 1:02d}"
        nodes = tuple(
            (f"{name}-{rack_name}-n{k + 1:02d}", kind.skus[k % len(kind.skus)],
             IPv4Address(block + slot * RACK_BLOCK + FIRST_HOST + k))
            for k in range(size)
        )
        racks.append(RackPlan(rack_name, _rack_limit(kind, ri, nodes), nodes))
    draw_kw = sum(SKUS[sku].draw_w for rack in racks for _, sku, _ in rack.nodes) / 1000
    power_kw = _round_up(draw_kw * 1.10, 50)
    cooling_kw = (_round_up(draw_kw * kind.cooling_share, 50) if kind.cooling_share >= 1
                  else int(draw_kw * kind.cooling_share))
    return ContainerPlan(name, kind, power_kw, cooling_kw, tuple(racks))


def _rack_limit(kind: Kind, index: int, nodes: tuple[tuple[str, str, IPv4Address], ...]) -> int | None:
    if kind.rack_kw is not None:
        return kind.rack_kw
    if kind.rack_cut is not None and index % 2 == 1:
        draw = sum(SKUS[sku].draw_w for _, sku, _ in nodes)
        floor_w = sum(SKUS[sku].host_w + SKUS[sku].gpus * SKUS[sku].min_cap_w for _, sku, _ in nodes)
        limit = int(draw * kind.rack_cut / 1000)
        return max(limit, math.ceil(floor_w / 1000))
    return None


def _round_up(value: float, step: int) -> int:
    return int(math.ceil(value / step) * step)


def site_text(total: int) -> str:
    """The site file of `total` nodes, as YAML text."""
    containers = containers_for(total)
    name = f"bench-{total}"
    draw_w = sum(SKUS[sku].draw_w for c in containers for r in c.racks for _, sku, _ in r.nodes)
    # Grid sized 5% above the draw at TDP, after PUE and reserve: the site itself never binds.
    grid_kw = math.ceil(draw_w * 1.05 * PUE_PERMILLE / 1000 / (1 - RESERVE_PCT / 100) / 1000)
    servers = _nodes(containers[0])[:CONTROL_PLANE]
    models = {SKUS[sku].gpu for c in containers for r in c.racks for _, sku, _ in r.nodes}
    out = [
        f"# {name}: a generated site of {total} nodes for bench/plan_scaling.py (bench/sites.py).",
        f"# {len(containers)} containers of ~{NODES_PER_CONTAINER} nodes in racks of {NODES_PER_RACK},"
        " cycling five designs;",
        "# racks on low busway taps and immersion containers' coolers bind, the grid does not.",
        "apiVersion: ecohash.io/v1",
        "kind: Site",
        "metadata:",
        f"  name: {name}",
        "  region: bench",
        f"  description: generated benchmark site of {total} nodes",
        "spec:",
        "  power:",
        f"    grid_mw: {grid_kw // 1000}.{grid_kw % 1000:03d}",
        f"    reserve_pct: {RESERVE_PCT}",
        f"    pue: {PUE}",
        "  network:",
        f"    mgmt_cidr: {MGMT_CIDR}",
        "  skus:",
        "    # Metered figure overriding the catalog's, as real sites do.",
        "    l40s-4: {host_w: 1000}",
        "  kubernetes:",
        "    distribution: k3s",
        f"    servers: [{', '.join(servers)}]",
        "  containers:",
    ]
    for container in containers:
        out += [
            f"    - name: {container.name}",
            f"      # {container.kind.name}",
            f"      cooling: {container.kind.cooling}",
            f"      power_kw: {container.power_kw}",
            f"      cooling_kw: {container.cooling_kw}",
            "      racks:",
        ]
        for rack in container.racks:
            out.append(f"        - name: {rack.name}")
            if rack.power_kw is not None:
                out.append(f"          power_kw: {rack.power_kw}")
            out.append("          nodes:")
            out += [f"            - {{name: {node}, sku: {sku}, mgmt_ip: {ip}}}"
                    for node, sku, ip in rack.nodes]
    out += [
        "  provisioning:",
        "    ssh:",
        "      user: ecohash",
        "    apt_proxy: http://10.0.0.5:3142",
        "    registry: 10.0.0.5:5000",
        "    ntp_servers: [10.0.0.1, 10.0.0.2]",
        "    rollout:",
        '      serial: [1, "5%"]',
        "      max_fail_percentage: 10",
        "  services:",
    ]
    for service, model, gpu_model, per_replica, extra in SERVICES:
        if gpu_model not in models:
            continue
        out += [
            f"    - name: {service}",
            f"      model: {model}",
            f"      gpu_model: {gpu_model}",
            f"      gpus_per_replica: {per_replica}",
            f"      {extra}",
        ]
    rtx = [c.name for c in containers if "rtx4090-8" in c.kind.skus]
    if rtx:
        # Placed by hand: a small model on the first PCIe container's RTX 4090 boxes only.
        out += [
            "    - name: qwen-7b",
            "      model: Qwen/Qwen2.5-7B-Instruct",
            "      gpu_model: rtx-4090",
            "      gpus_per_replica: 1",
            "      replicas: {min: 8, max: 320}",
            f"      placement: {{containers: [{rtx[0]}], skus: [rtx4090-8]}}",
        ]
    return "\n".join(out) + "\n"


def _nodes(container: ContainerPlan) -> list[str]:
    return [node for rack in container.racks for node, _, _ in rack.nodes]


def write_sites(out_dir: Path, sizes: tuple[int, ...] = DEFAULT_SIZES) -> list[Path]:
    """Write `<out_dir>/bench-<N>/site.yaml` for each size; return the files."""
    files = []
    for total in sizes:
        path = out_dir / f"bench-{total}" / "site.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(site_text(total), encoding="utf-8")
        files.append(path)
    return files


def parse_sizes(text: str) -> tuple[int, ...]:
    """'100,1000,10_000' -> (100, 1000, 10000)."""
    return tuple(int(part.replace("_", "")) for part in text.split(",") if part.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", nargs="?", type=Path, help="where to write (default: a new temp dir)")
    parser.add_argument("--sizes", type=parse_sizes, default=DEFAULT_SIZES,
                        help="comma-separated node counts (default: 100,1000,10000,50000)")
    args = parser.parse_args()
    out_dir = args.out_dir or Path(tempfile.mkdtemp(prefix="ecohash-bench-"))
    for path in write_sites(out_dir, args.sizes):
        print(f"{path}\t{path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
