"""Names of the stored series: one vocabulary for the agent, its API and the app."""

from __future__ import annotations

from dataclasses import dataclass

HEAT_POWER = "heat.power_w"  # total heat output now (W), with provenance in the status
HEAT_ENERGY = "heat.energy_kwh"  # cumulative heat delivered since the history began (kWh)
CPU_POWER = "cpu.power_w"
CPU_TEMP = "cpu.temp_c"
CPU_UTIL = "cpu.util_pct"
CPU_FREQ = "cpu.freq_mhz"
MEM_USED = "mem.used_pct"
# The thermostat (issue 4): recorded each second once the heating loop runs.
ROOM_TEMP = "room_c"  # the room thermometer's last reading (°C)
SETPOINT = "setpoint_c"  # the setpoint in force (°C); None when unknown
HEAT_DEMAND = "heat_demand_pct"  # the controller's heat demand (%)


def gpu_series(index: int, field: str) -> str:
    """``gpu_series(0, "temp_c") == "gpu0.temp_c"``."""
    return f"gpu{index}.{field}"


GPU_FIELDS = ("power_w", "temp_c", "util_pct", "fan_pct", "clock_sm_mhz", "mem_used_pct")


@dataclass(frozen=True, slots=True)
class SeriesSpec:
    name: str
    unit: str
    label: str


_UNITS = {"w": "W", "c": "°C", "pct": "%", "mhz": "MHz", "kwh": "kWh"}
_LABELS = {
    HEAT_POWER: "Heat output",
    HEAT_ENERGY: "Heat delivered",
    CPU_POWER: "CPU power",
    CPU_TEMP: "CPU temperature",
    CPU_UTIL: "CPU utilisation",
    CPU_FREQ: "CPU frequency",
    MEM_USED: "Memory used",
    ROOM_TEMP: "Room temperature",
    SETPOINT: "Setpoint",
    HEAT_DEMAND: "Heat demand",
}
_GPU_LABELS = {
    "power_w": "power",
    "temp_c": "temperature",
    "util_pct": "utilisation",
    "fan_pct": "fan",
    "clock_sm_mhz": "clock",
    "mem_used_pct": "memory used",
}


def spec_for(name: str) -> SeriesSpec:
    """Unit and label from a series name (the suffix after the last ``_`` is the unit)."""
    unit = _UNITS.get(name.rsplit("_", 1)[-1], "")
    label = _LABELS.get(name)
    if label is None and name.startswith("gpu") and "." in name:
        prefix, field = name.split(".", 1)
        label = f"GPU {prefix[3:]} {_GPU_LABELS.get(field, field)}"
    return SeriesSpec(name, unit, label or name)
