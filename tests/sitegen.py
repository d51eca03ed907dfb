"""Building site YAML from compact descriptions, for budget and capacity tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import strategies as st


@dataclass
class R:
    """A rack: node SKUs in order, and an optional limit in kW."""

    skus: list[str]
    power_kw: str | None = None


@dataclass
class C:
    racks: list[R]
    power_kw: str = "1000"
    cooling_kw: str = "1000"
    flex: int | None = None  # the curtailment tier; None leaves the site file's default


@dataclass
class S:
    containers: list[C]
    grid_mw: str = "100"
    reserve_pct: str = "0"
    pue: str = "1"
    gpu_models: dict[str, tuple[int, int]] = field(default_factory=dict)  # key: (tdp, min)
    skus: dict[str, tuple[str | None, int, int]] = field(default_factory=dict)  # (gpu, gpus, host)

    def yaml(self) -> str:
        lines = [
            "apiVersion: ecohash.io/v1", "kind: Site", "metadata: {name: t}", "spec:",
            f"  power: {{grid_mw: {self.grid_mw}, reserve_pct: {self.reserve_pct}, pue: {self.pue}}}",
            "  network: {mgmt_cidr: 10.0.0.0/8}",
        ]
        if self.gpu_models:
            lines.append("  gpu_models:")
            lines += [f"    {k}: {{tdp_w: {t}, min_cap_w: {m}}}" for k, (t, m) in self.gpu_models.items()]
        if self.skus:
            lines.append("  skus:")
            for key, (gpu, gpus, host) in self.skus.items():
                gpu_text = f"gpu: {gpu}, " if gpu else ""
                lines.append(f"    {key}: {{{gpu_text}gpus: {gpus}, host_w: {host}}}")
        lines.append("  containers:")
        ip = 1
        for ci, container in enumerate(self.containers, 1):
            lines += [f"    - name: c{ci}", "      cooling: air",
                      f"      power_kw: {container.power_kw}", f"      cooling_kw: {container.cooling_kw}",
                      *([f"      flex: {container.flex}"] if container.flex is not None else []),
                      "      racks:"]
            for ri, rack in enumerate(container.racks, 1):
                limit = f", power_kw: {rack.power_kw}" if rack.power_kw else ""
                lines.append(f"        - {{name: r{ri}{limit}, nodes: [")
                for ni, sku in enumerate(rack.skus, 1):
                    lines.append(f"            {{name: c{ci}-r{ri}-n{ni}, sku: {sku}, "
                                 f"mgmt_ip: 10.0.{ip // 250}.{ip % 250 + 1}}},")
                    ip += 1
                lines.append("          ]}")
        return "\n".join(lines) + "\n"


@st.composite
def catalogs(draw):
    """Random GPU models ga, gb and SKUs sa, sb, sc (some CPU-only) for S, as property tests use."""
    models = {}
    for key in ("ga", "gb"):
        tdp = draw(st.integers(100, 1000))
        models[key] = (tdp, draw(st.integers(50, tdp)))
    skus = {}
    for key in ("sa", "sb", "sc"):
        gpus = draw(st.integers(0, 8))
        gpu = draw(st.sampled_from(["ga", "gb"])) if gpus else None
        skus[key] = (gpu, gpus, draw(st.integers(0, 1500)))
    return models, skus
