"""Hardware adapters, one module per source, gathered into one :class:`SensorSuite`.

An unsupported reading is None, never a made-up number. No Qt here, and no pydantic: the
bench script ``bench/nvml_check.py`` imports this package on bare GPU machines.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from heatshare.domain.readings import Snapshot
from heatshare.sensors.host import HostSensor
from heatshare.sensors.nvml import NvmlSensor, NvmlUnavailable
from heatshare.sensors.rapl import RaplSensor

__all__ = [
    "HostSensor",
    "NvmlSensor",
    "NvmlUnavailable",
    "RaplSensor",
    "SensorSuite",
    "default_sensors",
]

log = logging.getLogger(__name__)

# The agent asks NVML's display-only readings (fan, clocks, memory, power limit) every 5 s,
# and the total-energy counter (milliseconds of driver time a read) every 5 s: the energy
# totals stay exactly the counter's, booked at each read.
NVML_SLOW_EVERY = 5
NVML_ENERGY_EVERY = 5


class SensorSuite:
    """Every sensor of this machine, read together into one :class:`Snapshot` per tick.

    Args:
        host: the psutil host sensor.
        nvml: the GPUs, or None on a CPU-only heater.
        rapl: the CPU package counters, or None; one that is not available is not read.
        mono: monotonic clock stamped on each snapshot (intervals).
        wall: UTC clock stamped on each snapshot (history).
    """

    def __init__(
        self,
        *,
        host: HostSensor,
        nvml: NvmlSensor | None,
        rapl: RaplSensor | None,
        mono: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.host = host
        self.nvml = nvml
        self.rapl = rapl
        self._mono = mono
        self._wall = wall

    def read(self) -> Snapshot:
        """Read every sensor once."""
        # The energy counters are read first, right after the clocks, so the time stamped on
        # the snapshot is the time their values belong to.
        mono = self._mono()
        wall = self._wall()
        gpus = self.nvml.read() if self.nvml is not None else ()
        rapl = self.rapl.read() if self.rapl is not None and self.rapl.available else ()
        return Snapshot(mono_s=mono, wall_ts=wall, host=self.host.read(), gpus=gpus, rapl=rapl)

    def describe(self) -> list[str]:
        """Human lines saying what this machine offers, for the log and the app."""
        lines = self.nvml.describe() if self.nvml is not None else ["GPU: none (CPU-only heater)"]
        lines += self.rapl.describe() if self.rapl is not None else ["RAPL: not used"]
        lines += self.host.describe()
        return lines

    def gpu_power_limit_control(self) -> tuple[tuple[int, float, float], ...]:
        """``(index, min_w, max_w)`` of the GPUs whose power limit the agent may set."""
        return self.nvml.power_limit_control() if self.nvml is not None else ()

    def set_gpu_power_limits(self, limits: dict[int, float]) -> dict[int, float]:
        """Cap the GPUs in ``limits`` (index -> W); every other GPU the agent capped gets
        its default limit back. Returns the caps in force (a refused one is left out)."""
        if self.nvml is None:
            return {}
        for index in set(self.nvml.power_limits_set) - set(limits):
            self.nvml.restore_power_limit(index)
        for index, watts in limits.items():
            self.nvml.set_power_limit(index, watts)
        return self.nvml.power_limits_set

    def close(self) -> None:
        """Release NVML (power limits the agent set are restored first); not read again."""
        if self.nvml is not None:
            self.nvml.close()


def default_sensors() -> SensorSuite:
    """This machine's real sensors. No NVIDIA driver or GPU makes a CPU-only heater."""
    nvml: NvmlSensor | None = None
    try:
        import pynvml

        nvml = NvmlSensor(pynvml, slow_every=NVML_SLOW_EVERY, energy_every=NVML_ENERGY_EVERY)
    except ImportError as exc:
        log.info("No NVML bindings (%s): a CPU-only heater", exc)
    except NvmlUnavailable as exc:
        log.info("%s: a CPU-only heater", exc)
    else:
        log.info("NVML driver %s: %s", nvml.driver_version, "; ".join(nvml.describe()))
    return SensorSuite(host=HostSensor(), nvml=nvml, rapl=RaplSensor())
