#!/usr/bin/python3
"""SIMULATED nvidia-smi for ecohash lab hosts: there is no GPU and no NVIDIA driver here.

Installed as /usr/bin/nvidia-smi by the `nvidia-driver-sim` package that the lab builds.
It answers the queries ecohash's roles use, formatted like the real tool, from the host's
simulated hardware (/etc/ecohash-sim/gpus.json, written by the lab) and keeps settings
(power limits, persistence mode) in a state file, as the real driver keeps them until reboot.
Standard library only: it runs on the hosts' own python3.

Power follows a SIMULATED workload: each GPU has a demand (by default flat out, a little under
TDP; `--sim-set-demand=W [-i N]` sets it, a simulator-only option no real nvidia-smi has) and
draws min(demand, its enforced limit), so a cap binds as on a busy GPU. The energy counter
(total_energy_consumption, mJ since "driver load": the first time the simulator ran on the
host) integrates that draw over wall time.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from pathlib import Path

DRIVER_VERSION = "550.127.05"
CUDA_VERSION = "12.4"
SIMULATED_NOTE = "SIMULATED by ecohash lab (nvidia-driver-sim): no GPU or NVIDIA driver is present"

HARDWARE_FILE = Path(os.environ.get("ECOHASH_SIM_HARDWARE", "/etc/ecohash-sim/gpus.json"))
STATE_FILE = Path(os.environ.get("ECOHASH_SIM_STATE", "/var/lib/nvidia-driver-sim/state.json"))

# nvidia-smi's documented return codes.
EXIT_OK = 0
EXIT_INVALID_ARGUMENT = 2
EXIT_NO_PERMISSION = 4
EXIT_NOT_FOUND = 6
EXIT_DRIVER = 9

WATT_FIELDS = {
    "power.limit",
    "power.draw",
    "power.min_limit",
    "power.max_limit",
    "power.default_limit",
    "enforced.power.limit",
}
ALIASES = {
    "gpu_name": "name",
    "gpu_uuid": "uuid",
    "gpu_serial": "serial",
    "gpu_bus_id": "pci.bus_id",
    "persistence_mode": "persistence_mode",
}
UNITS = {"memory.total": "MiB", "memory.used": "MiB", "utilization.gpu": "%", "temperature.gpu": ""}
NOT_APPLICABLE = "[N/A]"


class SmiError(Exception):
    """An error nvidia-smi reports with a message and an exit code."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def load_hardware() -> dict:
    try:
        return json.loads(HARDWARE_FILE.read_text())
    except OSError as error:
        raise SmiError(
            "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
            "Make sure that the latest NVIDIA driver is installed and running.\n"
            f"({SIMULATED_NOTE}; no simulated hardware at {HARDWARE_FILE}: {error.strerror})",
            EXIT_DRIVER,
        ) from error


def load_state(hardware: dict) -> dict:
    try:
        state = json.loads(STATE_FILE.read_text())
    except (OSError, ValueError):
        state = {}
    gpus = state.setdefault("gpus", {})
    for gpu in hardware["gpus"]:
        gpus.setdefault(
            str(gpu["index"]),
            {"power_limit_w": float(hardware["default_limit_w"]), "persistence_mode": False},
        )
    return state


def save_state(state: dict) -> None:
    STATE_FILE.parent.mkdir(parents=True, exist_ok=True)
    temporary = STATE_FILE.with_suffix(".tmp")
    temporary.write_text(json.dumps(state, indent=2) + "\n")
    os.replace(temporary, STATE_FILE)


# --- The SIMULATED workload and energy counter --------------------------------------------

UNITS["total_energy_consumption"] = "mJ"


def default_demand_w(gpu: dict, hardware: dict) -> float:
    """A GPU working flat out: a little under its TDP, a different little for each GPU."""
    return float(hardware["tdp_w"]) - 1.37 * gpu["index"]


def draw_w(gpu: dict, hardware: dict, setting: dict) -> float:
    """What the GPU draws: what its work asks for (an idle GPU still draws its idle power),
    held to the enforced limit."""
    demand = max(float(setting.get("demand_w", default_demand_w(gpu, hardware))), hardware["idle_draw_w"])
    return min(demand, setting["power_limit_w"])


def advance_energy(state: dict, hardware: dict, now: float) -> None:
    """Add each GPU's draw since the state's last time to its counter. The draw was constant
    since then: only a command that changes a setting changes it, and it advances first."""
    elapsed = max(0.0, now - state.get("energy_at", now))
    for gpu in hardware["gpus"]:
        setting = state["gpus"][str(gpu["index"])]
        setting["energy_mj"] = setting.get("energy_mj", 0.0) + draw_w(gpu, hardware, setting) * elapsed * 1000
    state["energy_at"] = now


def follow_the_clock(state: dict, hardware: dict) -> None:
    """Bring the energy counters to now; a host's first invocation is its "driver load"."""
    loaded = "energy_at" in state
    advance_energy(state, hardware, time.time())
    if not loaded and os.geteuid() == 0:
        save_state(state)


def set_demand(watts: str, hardware: dict, state: dict, ids: str | None) -> str:
    """SIMULATED: the power each selected GPU's work would draw without a limit."""
    try:
        demand = float(watts)
    except ValueError:
        demand = -1.0
    if not 0 <= demand <= 10_000:
        raise SmiError(f'Invalid value "{watts}" for the SIMULATED demand (watts).', EXIT_INVALID_ARGUMENT)
    lines = []
    for gpu in selected_gpus(hardware, ids):
        require_root("the SIMULATED demand", gpu)
        state["gpus"][str(gpu["index"])]["demand_w"] = demand
        lines.append(f"SIMULATED demand of GPU {gpu['pci_bus_id']} set to {demand:.2f} W.")
    save_state(state)
    return "\n".join([*lines, "All done."])


def hold_the_driver() -> int | None:
    """One invocation at a time, as the driver serialises its clients: two that change
    settings at once (the cap timer and a curtailment) would otherwise lose one's change."""
    try:
        descriptor = os.open(STATE_FILE.parent, os.O_RDONLY)
    except OSError:
        return None  # no state yet (the package makes its directory), or none this user can reach
    fcntl.flock(descriptor, fcntl.LOCK_EX)
    return descriptor


# --- nvidia-smi's answers -------------------------------------------------------------------


def field_value(field: str, gpu: dict, hardware: dict, setting: dict) -> float | str:
    limit = setting["power_limit_w"]
    values: dict[str, float | str] = {
        "index": str(gpu["index"]),
        "name": hardware["name"],
        "driver_version": DRIVER_VERSION,
        "count": str(hardware["count"]),
        "uuid": gpu["uuid"],
        "serial": gpu["serial"],
        "pci.bus_id": gpu["pci_bus_id"],
        "persistence_mode": "Enabled" if setting["persistence_mode"] else "Disabled",
        "power.limit": limit,
        "enforced.power.limit": limit,
        "power.draw": draw_w(gpu, hardware, setting),
        "total_energy_consumption": str(int(setting["energy_mj"])),
        "power.min_limit": float(hardware["min_limit_w"]),
        "power.max_limit": float(hardware["max_limit_w"]),
        "power.default_limit": float(hardware["default_limit_w"]),
        # Faults a test can inject into the host's gpus.json, per GPU (simhardware.FAULTS).
        "ecc.errors.uncorrected.volatile.total": str(gpu.get("ecc_uncorrected_volatile", 0)),
        # GPUs that remap rows (A100, H100, H200, L40S) have no retired pages to report.
        "retired_pages.pending": NOT_APPLICABLE if hardware.get("row_remapping")
        else "Yes" if gpu.get("retired_pages_pending") else "No",
        "pstate": "P0",
        "temperature.gpu": "31",
        "utilization.gpu": "0",
        "memory.total": "81559" if "H100" in hardware["name"] else "46068",
        "memory.used": "0",
    }
    return values[field]


def enabled(flag: bool) -> str:
    return "Enabled" if flag else "Disabled"


def header_of(field: str) -> str:
    if field in WATT_FIELDS:
        return f"{field} [W]"
    unit = UNITS.get(field)
    return f"{field} [{unit}]" if unit else field


def render(value: float | str, field: str, units: bool) -> str:
    if field in WATT_FIELDS:
        return f"{value:.2f} W" if units else f"{value:.2f}"
    unit = UNITS.get(field)
    if unit and units:
        return f"{value} {unit}"
    return str(value)


def selected_gpus(hardware: dict, ids: str | None) -> list[dict]:
    if ids is None:
        return hardware["gpus"]
    chosen = []
    for wanted in ids.split(","):
        matches = [
            g
            for g in hardware["gpus"]
            if wanted.strip() in (str(g["index"]), g["uuid"], g["serial"], g["pci_bus_id"])
        ]
        if not matches:
            raise SmiError("No devices were found", EXIT_NOT_FOUND)
        chosen.extend(matches)
    return chosen


def query_gpu(
    fields_arg: str, format_arg: str, hardware: dict, state: dict, ids: str | None
) -> str:
    formats = {part.strip() for part in format_arg.split(",")}
    if "csv" not in formats or not formats <= {"csv", "noheader", "nounits"}:
        raise SmiError(f'"{format_arg}" is not a valid format.', EXIT_INVALID_ARGUMENT)
    fields = [ALIASES.get(f.strip(), f.strip()) for f in fields_arg.split(",") if f.strip()]
    for original, field in zip(fields_arg.split(","), fields, strict=False):
        try:
            field_value(field, hardware["gpus"][0], hardware, state["gpus"]["0"])
        except KeyError:
            raise SmiError(
                f'Field "{original.strip()}" is not a valid field to query.', EXIT_INVALID_ARGUMENT
            ) from None
    lines = [] if "noheader" in formats else [", ".join(header_of(f) for f in fields)]
    for gpu in selected_gpus(hardware, ids):
        setting = state["gpus"][str(gpu["index"])]
        lines.append(
            ", ".join(
                render(field_value(f, gpu, hardware, setting), f, "nounits" not in formats)
                for f in fields
            )
        )
    return "\n".join(lines)


def remapped_rows_value(field: str, gpu: dict, hardware: dict) -> str:
    """A --query-remapped-rows field: counts, and the pending and failure flags as 0 or 1."""
    identity = {"gpu_uuid": gpu["uuid"], "gpu_bus_id": gpu["pci_bus_id"], "gpu_serial": gpu["serial"],
                "gpu_name": hardware["name"]}
    if field in identity:
        return identity[field]
    counters = {"remapped_rows.correctable": "remapped_rows_correctable",
                "remapped_rows.uncorrectable": "remapped_rows_uncorrectable",
                "remapped_rows.pending": "remapped_rows_pending",
                "remapped_rows.failure": "remapped_rows_failure"}
    if field not in counters:
        raise KeyError(field)
    if not hardware.get("row_remapping"):
        return NOT_APPLICABLE  # a GPU that retires pages instead
    return str(int(gpu.get(counters[field], 0)))


def query_remapped_rows(fields_arg: str, format_arg: str, hardware: dict, ids: str | None) -> str:
    formats = {part.strip() for part in format_arg.split(",")}
    if "csv" not in formats or not formats <= {"csv", "noheader", "nounits"}:
        raise SmiError(f'"{format_arg}" is not a valid format.', EXIT_INVALID_ARGUMENT)
    fields = [f.strip() for f in fields_arg.split(",") if f.strip()]
    for field in fields:
        try:
            remapped_rows_value(field, hardware["gpus"][0], hardware)
        except KeyError:
            raise SmiError(f'Field "{field}" is not a valid field to query.', EXIT_INVALID_ARGUMENT) from None
    lines = [] if "noheader" in formats else [", ".join(fields)]
    for gpu in selected_gpus(hardware, ids):
        lines.append(", ".join(remapped_rows_value(f, gpu, hardware) for f in fields))
    return "\n".join(lines)


def require_root(action: str, gpu: dict) -> None:
    if os.geteuid() != 0:
        raise SmiError(
            f"Unable to set {action} for GPU {gpu['pci_bus_id']}: Insufficient Permissions\n"
            "Terminating early due to previous errors.",
            EXIT_NO_PERMISSION,
        )


def set_persistence(mode: str, hardware: dict, state: dict, ids: str | None) -> str:
    if mode not in ("0", "1"):
        raise SmiError(f'Invalid value "{mode}" for persistence mode.', EXIT_INVALID_ARGUMENT)
    lines = []
    for gpu in selected_gpus(hardware, ids):
        require_root("persistence mode", gpu)
        state["gpus"][str(gpu["index"])]["persistence_mode"] = mode == "1"
        verb = "Enabled" if mode == "1" else "Disabled"
        lines.append(f"{verb} persistence mode for GPU {gpu['pci_bus_id']}.")
    save_state(state)
    return "\n".join([*lines, "All done."])


def set_power_limit(watts: str, hardware: dict, state: dict, ids: str | None) -> str:
    try:
        requested = float(watts)
    except ValueError:
        raise SmiError(f'Invalid value "{watts}" for power limit.', EXIT_INVALID_ARGUMENT) from None
    lines = []
    for gpu in selected_gpus(hardware, ids):
        low, high = float(hardware["min_limit_w"]), float(hardware["max_limit_w"])
        if not low <= requested <= high:
            raise SmiError(
                f"Provided power limit {requested:.2f} W is not a valid power limit"
                " which should be "
                f"between {low:.2f} W and {high:.2f} W for GPU {gpu['pci_bus_id']}\n"
                "Terminating early due to previous errors.",
                EXIT_INVALID_ARGUMENT,
            )
        require_root("power limit", gpu)
        setting = state["gpus"][str(gpu["index"])]
        lines.append(
            f"Power limit for GPU {gpu['pci_bus_id']} was set to {requested:.2f} W "
            f"from {setting['power_limit_w']:.2f} W."
        )
        setting["power_limit_w"] = requested
    save_state(state)
    return "\n".join([*lines, "All done."])


def list_gpus(hardware: dict) -> str:
    return "\n".join(
        f"GPU {g['index']}: {hardware['name']} (UUID: {g['uuid']})" for g in hardware["gpus"]
    )


def row_remapper_section(gpu: dict, hardware: dict) -> list[str]:
    if not hardware.get("row_remapping"):
        return ["    Remapped Rows                         : N/A"]
    def value(field: str) -> str:
        return remapped_rows_value(field, gpu, hardware)

    yes_no = {"0": "No", "1": "Yes"}
    return [
        "    Remapped Rows",
        f"        Correctable Error                 : {value('remapped_rows.correctable')}",
        f"        Uncorrectable Error               : {value('remapped_rows.uncorrectable')}",
        f"        Pending                           : {yes_no[value('remapped_rows.pending')]}",
        f"        Remapping Failure Occurred        : {yes_no[value('remapped_rows.failure')]}",
    ]


def full_query(hardware: dict, state: dict, ids: str | None, display: str | None = None) -> str:
    lines = [
        "",
        "==============NVSMI LOG==============",
        "",
        f"Note                                      : {SIMULATED_NOTE}",
        f"Driver Version                            : {DRIVER_VERSION}",
        f"CUDA Version                              : {CUDA_VERSION}",
        "",
        f"Attached GPUs                             : {hardware['count']}",
    ]
    if display not in (None, "ROW_REMAPPER"):
        raise SmiError(f'"{display}" is not a valid display type (SIMULATED: only ROW_REMAPPER).',
                       EXIT_INVALID_ARGUMENT)
    for gpu in selected_gpus(hardware, ids):
        if display == "ROW_REMAPPER":
            lines += [f"GPU {gpu['pci_bus_id']}", *row_remapper_section(gpu, hardware), ""]
            continue
        setting = state["gpus"][str(gpu["index"])]
        draw = field_value("power.draw", gpu, hardware, setting)
        lines += [
            f"GPU {gpu['pci_bus_id']}",
            f"    Product Name                          : {hardware['name']}",
            f"    Persistence Mode                      : {enabled(setting['persistence_mode'])}",
            f"    Serial Number                         : {gpu['serial']}",
            f"    GPU UUID                              : {gpu['uuid']}",
            "    GPU Power Readings",
            f"        Power Draw                        : {draw:.2f} W",
            f"        Current Power Limit               : {setting['power_limit_w']:.2f} W",
            f"        Default Power Limit               : {hardware['default_limit_w']:.2f} W",
            f"        Min Power Limit                   : {float(hardware['min_limit_w']):.2f} W",
            f"        Max Power Limit                   : {float(hardware['max_limit_w']):.2f} W",
            *row_remapper_section(gpu, hardware),
            "",
        ]
    return "\n".join(lines)


def summary(hardware: dict, state: dict) -> str:
    lines = [
        f"NVIDIA-SMI {DRIVER_VERSION}    Driver Version: {DRIVER_VERSION}"
        f"    CUDA Version: {CUDA_VERSION}",
        f"({SIMULATED_NOTE})",
    ]
    for gpu in hardware["gpus"]:
        setting = state["gpus"][str(gpu["index"])]
        draw = field_value("power.draw", gpu, hardware, setting)
        lines.append(
            f"GPU {gpu['index']}  {hardware['name']:<24} {gpu['pci_bus_id']}  "
            f"{draw:.0f}W / {setting['power_limit_w']:.0f}W  "
            f"Persistence-M: {'On' if setting['persistence_mode'] else 'Off'}"
        )
    return "\n".join(lines)


def parse(argv: list[str]) -> dict[str, str | bool | None]:
    """nvidia-smi's options, in both the `-pl 300` and the `--power-limit=300` spellings."""
    names = {
        "-i": "id",
        "--id": "id",
        "--sim-set-demand": "sim_demand",
        "-pl": "power_limit",
        "--power-limit": "power_limit",
        "-pm": "persistence_mode",
        "--persistence-mode": "persistence_mode",
        "--query-gpu": "query_gpu",
        "--query-remapped-rows": "query_remapped_rows",
        "--format": "format",
        "-d": "display",
        "--display": "display",
    }
    flags = {
        "-L": "list",
        "--list-gpus": "list",
        "-q": "query",
        "--query": "query",
        "--version": "version",
        "-h": "help",
        "--help": "help",
    }
    options: dict[str, str | bool | None] = {}
    position = 0
    while position < len(argv):
        argument = argv[position]
        key, _, inline = argument.partition("=")
        if argument in flags:
            options[flags[argument]] = True
        elif key in names:
            if inline:
                options[names[key]] = inline
            elif position + 1 < len(argv):
                position += 1
                options[names[key]] = argv[position]
            else:
                raise SmiError(f"Option {key} requires a value.", EXIT_INVALID_ARGUMENT)
        else:
            raise SmiError(
                "Invalid combination of input arguments. Please run 'nvidia-smi -h' for help."
                f"\n({argument})",
                EXIT_INVALID_ARGUMENT,
            )
        position += 1
    return options


def main(argv: list[str]) -> int:
    lock = hold_the_driver()
    try:
        return answer(argv)
    finally:
        if lock is not None:
            os.close(lock)


def answer(argv: list[str]) -> int:
    try:
        options = parse(argv)
        if options.get("help"):
            print(f"NVIDIA System Management Interface -- v{DRIVER_VERSION}\n{SIMULATED_NOTE}")
            return EXIT_OK
        if options.get("version"):
            print(
                f"NVIDIA-SMI version  : {DRIVER_VERSION}\n"
                f"DRIVER version      : {DRIVER_VERSION}\n"
                f"CUDA Version        : {CUDA_VERSION}"
            )
            print(SIMULATED_NOTE, file=sys.stderr)
            return EXIT_OK
        hardware = load_hardware()
        state = load_state(hardware)
        follow_the_clock(state, hardware)
        ids = options.get("id")
        assert ids is None or isinstance(ids, str)
        if "query_gpu" in options:
            output = query_gpu(
                str(options["query_gpu"]), str(options.get("format", "csv")), hardware, state, ids
            )
        elif "query_remapped_rows" in options:
            output = query_remapped_rows(
                str(options["query_remapped_rows"]), str(options.get("format", "csv")), hardware, ids
            )
        elif "power_limit" in options:
            output = set_power_limit(str(options["power_limit"]), hardware, state, ids)
        elif "persistence_mode" in options:
            output = set_persistence(str(options["persistence_mode"]), hardware, state, ids)
        elif "sim_demand" in options:
            output = set_demand(str(options["sim_demand"]), hardware, state, ids)
        elif options.get("list"):
            output = list_gpus(hardware)
        elif options.get("query"):
            display = options.get("display")
            output = full_query(hardware, state, ids, None if display is None else str(display))
        else:
            output = summary(hardware, state)
    except SmiError as error:
        print(str(error), file=sys.stderr if error.code != EXIT_NOT_FOUND else sys.stdout)
        return error.code
    print(output)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
