"""CPU package energy through RAPL (``/sys/class/powercap/intel-rapl:N``, Intel and AMD).

Since the PLATYPUS side-channel fix (CVE-2020-8694, November 2020) ``energy_uj`` is readable by
root only on most distributions, so on most machines this sensor is not available and the CPU's
power is estimated from utilisation instead (and labelled so).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from heatshare.domain.readings import RaplReading

log = logging.getLogger(__name__)

# Top-level zones only ("intel-rapl:0", not the core/uncore/dram sub-zones "intel-rapl:0:0").
_ZONE = re.compile(r"^intel-rapl:\d+$")


@dataclass(frozen=True, slots=True)
class _Zone:
    name: str
    energy_file: Path
    max_energy_range_uj: int


class RaplSensor:
    """Reads every readable CPU package counter.

    Args:
        root: the powercap folder (a copy of its layout in the tests).

    Attributes:
        available: True when every package's counter could be read at start.
    """

    def __init__(self, root: Path = Path("/sys/class/powercap")) -> None:
        self.root = root
        self.zones: tuple[_Zone, ...] = ()
        self.reason: str | None = None
        try:
            self.zones = self._discover()
        except OSError as exc:
            self.reason = f"not readable ({exc.strerror or exc})"
        if not self.zones and self.reason is None:
            self.reason = "no CPU package counters"
        self.available = bool(self.zones)
        if not self.available:
            log.info("RAPL %s under %s: CPU power will be estimated", self.reason, root)

    def _discover(self) -> tuple[_Zone, ...]:
        if not self.root.is_dir():
            return ()
        zones: list[_Zone] = []
        for d in sorted(self.root.iterdir()):
            if not _ZONE.match(d.name):
                continue
            name = (d / "name").read_text().strip()
            if not name.startswith("package"):
                continue  # "psys" (the whole platform on some laptops) is not the CPU package
            if any(z.name == name for z in zones):
                name = f"{name} ({d.name})"
            max_range = int((d / "max_energy_range_uj").read_text())
            energy = d / "energy_uj"
            int(energy.read_text())  # raises PermissionError where only root may read it
            zones.append(_Zone(name, energy, max_range))
        return tuple(zones)

    def read(self) -> tuple[RaplReading, ...]:
        """All packages' counters, or () when not available or a read fails this tick."""
        if not self.available:
            return ()
        try:
            return tuple(
                RaplReading(z.name, int(z.energy_file.read_text()), z.max_energy_range_uj)
                for z in self.zones
            )
        except (OSError, ValueError) as exc:
            # A partial set would undercount the CPU; the accountant falls back for this tick.
            log.debug("RAPL read failed: %s", exc)
            return ()

    def describe(self) -> list[str]:
        """``["RAPL: package-0 (energy counter)"]`` or ``["RAPL: not readable"]``."""
        if self.available:
            return [f"RAPL: {', '.join(z.name for z in self.zones)} (energy counter)"]
        return [f"RAPL: {self.reason}"]
