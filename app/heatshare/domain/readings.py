"""Frozen records of what the sensors saw at one instant.

A field the hardware does not offer is ``None``; nothing here is ever estimated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Provenance(StrEnum):
    """Where a heat or power figure comes from, best source first."""

    PLUG = "plug"  # a smart plug at the wall: the whole machine
    ENERGY_COUNTER = "energy_counter"  # a hardware energy counter (NVML total energy, RAPL)
    POWER_READING = "power_reading"  # instantaneous power readings, integrated over time
    ESTIMATE = "estimate"  # a model from utilisation: labelled as an estimate

    @property
    def rank(self) -> int:
        """Lower is better; a total is only as good as its weakest part."""
        return _RANK[self]

    @property
    def label(self) -> str:
        return _LABEL[self]

    @property
    def is_measured(self) -> bool:
        """Read from hardware (a plug, a counter, power readings), not modelled."""
        return self is not Provenance.ESTIMATE


_RANK = {
    Provenance.PLUG: 0,
    Provenance.ENERGY_COUNTER: 1,
    Provenance.POWER_READING: 2,
    Provenance.ESTIMATE: 3,
}
_LABEL = {
    Provenance.PLUG: "measured at the wall plug",
    Provenance.ENERGY_COUNTER: "measured by energy counters",
    Provenance.POWER_READING: "measured from power readings",
    Provenance.ESTIMATE: "estimated from utilisation",
}


@dataclass(frozen=True, slots=True)
class GpuReading:
    """One NVIDIA GPU as NVML reported it."""

    index: int
    name: str
    uuid: str | None = None
    power_w: float | None = None
    energy_mj: int | None = None  # NVML total energy since the driver loaded, millijoules
    temp_c: float | None = None
    fan_pct: float | None = None
    util_gpu_pct: float | None = None
    util_mem_pct: float | None = None
    clock_sm_mhz: float | None = None
    clock_mem_mhz: float | None = None
    mem_used_bytes: int | None = None
    mem_total_bytes: int | None = None
    power_limit_w: float | None = None
    power_limit_min_w: float | None = None
    power_limit_max_w: float | None = None
    temp_slowdown_c: float | None = None
    temp_shutdown_c: float | None = None


@dataclass(frozen=True, slots=True)
class RaplReading:
    """One RAPL package energy counter (``/sys/class/powercap``)."""

    name: str
    energy_uj: int
    max_energy_range_uj: int


@dataclass(frozen=True, slots=True)
class HostReading:
    """The host as psutil reported it."""

    cpu_pct: float | None = None
    per_core_pct: tuple[float, ...] = ()
    mem_used_bytes: int | None = None
    mem_total_bytes: int | None = None
    mem_pct: float | None = None
    cpu_temp_c: float | None = None
    cpu_freq_mhz: float | None = None  # read at a slower rate; the last value is carried
    logical_cpus: int | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything read in one sampler tick.

    ``mono_s`` is a monotonic clock for intervals; ``wall_ts`` is UTC seconds since the epoch.
    """

    mono_s: float
    wall_ts: float
    host: HostReading
    gpus: tuple[GpuReading, ...] = ()
    rapl: tuple[RaplReading, ...] = field(default=())
