"""The host through psutil: CPU utilisation, memory, CPU temperature and frequency."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psutil

from heatshare.domain.readings import HostReading

log = logging.getLogger(__name__)

# Where each driver reports the CPU's own temperature, best first: (driver, labels). An empty
# label tuple takes the driver's first sensor. acpitz (a motherboard ACPI zone) is the last
# resort: often a fixed or board temperature rather than the CPU's.
_TEMP_SOURCES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("coretemp", ("Package id 0",)),  # Intel
    ("k10temp", ("Tdie", "Tctl")),  # AMD; Tctl carries an offset on some parts, so Tdie first
    ("zenpower", ("Tdie", "Tctl")),  # AMD, out-of-tree driver
    ("cpu_thermal", ()),  # Raspberry Pi and other ARM boards
    ("acpitz", ()),
)
# A value outside this range is a driver's placeholder (0, -273, 255), not a temperature.
_PLAUSIBLE_C = (-40.0, 150.0)


def pick_cpu_temp(temps: Mapping[str, Sequence[Any]]) -> tuple[str, float] | None:
    """The CPU temperature from ``psutil.sensors_temperatures()``: (where, °C), or None.

    Entries need ``label`` and ``current`` (psutil's ``shwtemp``).
    """
    for driver, labels in _TEMP_SOURCES:
        entries = [e for e in temps.get(driver, ()) if _plausible(e.current)]
        if not entries:
            continue
        if not labels:
            return driver, float(entries[0].current)
        for label in labels:
            for e in entries:
                if e.label == label:
                    return f"{driver} {label}", float(e.current)
    return None


def _plausible(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and math.isfinite(value)
        and _PLAUSIBLE_C[0] <= value <= _PLAUSIBLE_C[1]
    )


class HostSensor:
    """Reads the host once per tick; temperature and frequency (slow on some machines) less often.

    ``psutil.cpu_percent`` measures since its previous call, so the first call is made here and
    thrown away; it keeps that state in psutil, so nothing else in the process should call
    ``cpu_percent(percpu=True)``.

    Args:
        freq_period_s: seconds between CPU frequency reads; the last value is carried between.
        temp_period_s: seconds between CPU temperature reads (psutil walks every hwmon device,
            tens of milliseconds on a desktop with many); carried between.
        no_temp_period_s: seconds between looks for a temperature sensor where none was found.
        mono: the monotonic clock that times these periods.
    """

    def __init__(
        self,
        *,
        freq_period_s: float = 10.0,
        temp_period_s: float = 2.0,
        no_temp_period_s: float = 60.0,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        self._freq_period_s = freq_period_s
        self._temp_period_s = temp_period_s
        self._no_temp_period_s = no_temp_period_s
        self._temp_next = -math.inf
        self._temp_c: float | None = None
        self._mono = mono
        self._freq_next = -math.inf
        self._freq_mhz: float | None = None
        self.logical_cpus: int | None = psutil.cpu_count(logical=True)
        self.temp_source: str | None = None
        psutil.cpu_percent(percpu=True)  # start the measuring interval

    def read(self) -> HostReading:
        """One reading; what the OS does not report is None."""
        per_core = tuple(float(p) for p in psutil.cpu_percent(percpu=True))
        vm = psutil.virtual_memory()
        return HostReading(
            cpu_pct=sum(per_core) / len(per_core) if per_core else None,
            per_core_pct=per_core,
            # total - available, as vm.percent counts it: page cache is not memory in use.
            mem_used_bytes=int(vm.total - vm.available),
            mem_total_bytes=int(vm.total),
            mem_pct=float(vm.percent),
            cpu_temp_c=self._temp_carried(),
            cpu_freq_mhz=self._freq(),
            logical_cpus=self.logical_cpus,
        )

    def _temp_carried(self) -> float | None:
        now = self._mono()
        if now >= self._temp_next:
            self._temp_c = self._temp()
            found = self._temp_c is not None
            self._temp_next = now + (self._temp_period_s if found else self._no_temp_period_s)
        return self._temp_c

    def _temp(self) -> float | None:
        reader = getattr(psutil, "sensors_temperatures", None)  # absent on Windows and macOS
        if reader is None:
            return None
        try:
            picked = pick_cpu_temp(reader())
        except (OSError, RuntimeError) as exc:
            log.debug("sensors_temperatures failed: %s", exc)
            picked = None
        self.temp_source = picked[0] if picked is not None else None
        return picked[1] if picked is not None else None

    def _freq(self) -> float | None:
        now = self._mono()
        if now >= self._freq_next:
            self._freq_next = now + self._freq_period_s
            try:
                freq = psutil.cpu_freq()
            except (OSError, NotImplementedError, RuntimeError) as exc:
                log.debug("cpu_freq failed: %s", exc)
                freq = None
            current = getattr(freq, "current", None)
            self._freq_mhz = float(current) if current else None  # 0.0 means "not known"
        return self._freq_mhz

    def describe(self) -> list[str]:
        """Human lines about what the host offers."""
        lines = [f"CPU: {self.logical_cpus or '?'} logical CPUs (psutil)"]
        self._temp()
        lines.append(
            f"CPU temperature: {self.temp_source}"
            if self.temp_source
            else "CPU temperature: not reported"
        )
        return lines
