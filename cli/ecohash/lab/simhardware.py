"""The simulated GPUs a lab host "has": written into its root at creation.

The hardware belongs to the host (model and count come from the node's SKU); the driver,
which reads this description, belongs to the simulated driver package in the site mirror.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SIM_HARDWARE_FILE = Path("etc/ecohash-sim/gpus.json")


@dataclass(frozen=True)
class GpuModel:
    """A GPU model as the inventory knows it and as nvidia-smi names it."""

    inventory_name: str
    smi_name: str
    tdp_w: int
    min_limit_w: int
    idle_draw_w: int
    # How the GPU repairs bad memory. Row remapping (GA100, GA10x, Ada AD10x, GH100 and
    # later, per NVIDIA's "GPU Memory Error Management"): nvidia-smi reports retired pages
    # as [N/A] and answers --query-remapped-rows. Older GPUs retire pages, the other way round.
    row_remapping: bool


# The inventory's built-in models; names as real nvidia-smi prints them.
GPU_MODELS = {
    "h100-sxm": GpuModel(
        "h100-sxm", "NVIDIA H100 80GB HBM3", tdp_w=700, min_limit_w=200, idle_draw_w=72,
        row_remapping=True,
    ),
    "l40s": GpuModel(
        "l40s", "NVIDIA L40S", tdp_w=350, min_limit_w=100, idle_draw_w=36, row_remapping=True
    ),
}

# Faults a test may set on one GPU of a host's gpus.json (nvidia_smi_sim reports them):
# a count, or a flag. Retired pages only on GPUs that retire pages; remapped rows only on
# GPUs that remap rows, as on real hardware.
FAULTS = {
    "ecc_uncorrected_volatile": int,
    "retired_pages_pending": bool,
    "remapped_rows_correctable": int,
    "remapped_rows_uncorrectable": int,
    "remapped_rows_pending": bool,
    "remapped_rows_failure": bool,
}


def with_fault(description: dict[str, Any], gpu_index: int, fault: str, value: int | bool) -> dict[str, Any]:
    """A copy of a host's gpus.json with one fault set on one GPU (a SIMULATED fault)."""
    if fault not in FAULTS or not isinstance(value, FAULTS[fault]):
        raise ValueError(f"fault {fault}={value!r}: known faults are {', '.join(sorted(FAULTS))}")
    remapping_fault = fault.startswith("remapped_rows_")
    memory_fault = fault == "retired_pages_pending" or remapping_fault
    if memory_fault and remapping_fault != bool(description.get("row_remapping")):
        reported = "remapped rows" if remapping_fault else "retired pages"
        raise ValueError(f"{description['name']} does not report {reported}")
    gpus = [dict(gpu) for gpu in description["gpus"]]
    gpus[gpu_index][fault] = value
    return {**description, "gpus": gpus}


@dataclass(frozen=True)
class SimulatedGpus:
    """`count` GPUs of one model in one host."""

    host: str
    model: GpuModel
    count: int

    def description(self) -> dict[str, object]:
        gpus = []
        for index in range(self.count):
            seed = hashlib.sha256(f"{self.host}/{index}".encode()).digest()
            gpus.append(
                {
                    "index": index,
                    "uuid": f"GPU-{uuid.UUID(bytes=seed[:16])}",
                    "serial": str(1650000000000 + int.from_bytes(seed[16:20], "big") % 10**9),
                    # Bus ids as on an 8-GPU HGX board, so output looks like a real node's.
                    "pci_bus_id": f"00000000:{0x18 + 0x20 * index:02X}:00.0",
                }
            )
        return {
            "simulated": True,
            "note": "Simulated hardware for an ecohash lab host; there is no GPU here.",
            "model": self.model.inventory_name,
            "name": self.model.smi_name,
            "count": self.count,
            "tdp_w": self.model.tdp_w,
            "min_limit_w": self.model.min_limit_w,
            "max_limit_w": self.model.tdp_w,
            "default_limit_w": self.model.tdp_w,
            "idle_draw_w": self.model.idle_draw_w,
            "row_remapping": self.model.row_remapping,
            "gpus": gpus,
        }

    def write_into(self, root: Path) -> None:
        target = root / SIM_HARDWARE_FILE
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(self.description(), indent=2) + "\n")
