"""NVIDIA GPUs through NVML (the ``pynvml`` module of ``nvidia-ml-py``).

The module is passed in: the real ``pynvml`` in the agent, a fake that replays a recording of
a real card in the tests. Every call goes through :meth:`NvmlSensor._query`, the one place where
a reading the card does not offer becomes ``None`` (nvitop's ``nvmlQuery``, GWE's
``_nvml_get_val``); nothing is ever made up.

What is read, and how often, is listed in :data:`STATIC_CALLS` and :data:`TICK_CALLS`;
``bench/nvml_check.py`` records exactly these calls on a real card, and the tests' fake replays
them.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from heatshare.domain.readings import GpuReading

log = logging.getLogger(__name__)


class NvmlUnavailable(Exception):  # noqa: N818  (a state, not a bug: the agent runs CPU-only)
    """NVML cannot be used here: no driver, no library, or no GPU."""


@dataclass(frozen=True, slots=True)
class NvmlCall:
    """One NVML device call: the function and the names of its constant arguments."""

    fn: str
    args: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """How a recording names the call: ``"fn"`` or ``"fn(CONST)"``."""
        return f"{self.fn}({','.join(self.args)})" if self.args else self.fn


# Read once per device at start: they do not change while the driver is loaded.
NAME = NvmlCall("nvmlDeviceGetName")
UUID = NvmlCall("nvmlDeviceGetUUID")
LIMIT_RANGE = NvmlCall("nvmlDeviceGetPowerManagementLimitConstraints")
TEMP_SLOWDOWN = NvmlCall(
    "nvmlDeviceGetTemperatureThreshold", ("NVML_TEMPERATURE_THRESHOLD_SLOWDOWN",)
)
TEMP_SHUTDOWN = NvmlCall(
    "nvmlDeviceGetTemperatureThreshold", ("NVML_TEMPERATURE_THRESHOLD_SHUTDOWN",)
)
STATIC_CALLS = (NAME, UUID, LIMIT_RANGE, TEMP_SLOWDOWN, TEMP_SHUTDOWN)

# Read every tick.
POWER = NvmlCall("nvmlDeviceGetPowerUsage")  # mW
ENERGY = NvmlCall("nvmlDeviceGetTotalEnergyConsumption")  # mJ since the driver loaded
TEMP = NvmlCall("nvmlDeviceGetTemperature", ("NVML_TEMPERATURE_GPU",))
FAN = NvmlCall("nvmlDeviceGetFanSpeed")  # %; NOT_SUPPORTED on passively cooled cards
UTIL = NvmlCall("nvmlDeviceGetUtilizationRates")  # .gpu, .memory in %
CLOCK_SM = NvmlCall("nvmlDeviceGetClockInfo", ("NVML_CLOCK_SM",))
CLOCK_MEM = NvmlCall("nvmlDeviceGetClockInfo", ("NVML_CLOCK_MEM",))
MEMORY = NvmlCall("nvmlDeviceGetMemoryInfo")  # .used, .total in bytes
LIMIT = NvmlCall("nvmlDeviceGetPowerManagementLimit")  # mW; the owner may change it any time
TICK_CALLS = (POWER, ENERGY, TEMP, FAN, UTIL, CLOCK_SM, CLOCK_MEM, MEMORY, LIMIT)
# Readings that change slowly or matter only for display: the agent asks them every few ticks
# (``slow_every``) and carries them between, since each NVML call is a driver ioctl and on
# sandboxed hosts (gVisor) the ioctls dominate the agent's CPU time.
SLOW_CALLS = (FAN, CLOCK_SM, CLOCK_MEM, MEMORY, LIMIT)

# Setting the power limit (the heating controller's power cap): asked only where the agent
# may cap, which it learns by setting the current limit again at start.
DEFAULT_LIMIT = NvmlCall("nvmlDeviceGetPowerManagementDefaultLimit")  # mW
SET_LIMIT = "nvmlDeviceSetPowerManagementLimit"  # (handle, mW); root or a privileged helper
# The answers that mean "this agent may not set the limit here", for good.
_REFUSALS = ("NVMLError_NoPermission", "NVMLError_NotSupported")

# Which GpuReading fields each call fills (the name falls back to "NVIDIA GPU n", so none).
FIELDS_BY_CALL: dict[str, tuple[str, ...]] = {
    UUID.key: ("uuid",),
    LIMIT_RANGE.key: ("power_limit_min_w", "power_limit_max_w"),
    TEMP_SLOWDOWN.key: ("temp_slowdown_c",),
    TEMP_SHUTDOWN.key: ("temp_shutdown_c",),
    POWER.key: ("power_w",),
    ENERGY.key: ("energy_mj",),
    TEMP.key: ("temp_c",),
    FAN.key: ("fan_pct",),
    UTIL.key: ("util_gpu_pct", "util_mem_pct"),
    CLOCK_SM.key: ("clock_sm_mhz",),
    CLOCK_MEM.key: ("clock_mem_mhz",),
    MEMORY.key: ("mem_used_bytes", "mem_total_bytes"),
    LIMIT.key: ("power_limit_w",),
}


@dataclass(frozen=True, slots=True)
class GpuInfo:
    """What is read once per GPU."""

    index: int
    name: str
    uuid: str | None
    power_limit_min_w: float | None
    power_limit_max_w: float | None
    temp_slowdown_c: float | None
    temp_shutdown_c: float | None


class NvmlSensor:
    """Reads every NVIDIA GPU once per tick.

    Args:
        nvml_module: ``pynvml`` or a module-like fake with the same functions, constants and
            ``NVMLError`` classes.

    Raises:
        NvmlUnavailable: NVML failed to initialise, or it sees no GPU.
    """

    def __init__(self, nvml_module: Any, *, slow_every: int = 1, energy_every: int = 1) -> None:
        if slow_every < 1:
            raise ValueError("slow_every must be at least 1")
        if energy_every < 1:
            raise ValueError("energy_every must be at least 1")
        self._energy_every = energy_every
        self._nvml = nvml_module
        self._closed = False
        self._slow_every = slow_every
        self._reads = 0
        self._slow: dict[tuple[int, str], Any | None] = {}
        # (device index, call key) pairs the card answered NOT_SUPPORTED: never asked again, as
        # such an answer does not change while the driver is loaded.
        self._unsupported: set[tuple[int, str]] = set()
        # The power cap: which GPUs it may set (None until probed), and the limits it set.
        self._limit_lock = threading.Lock()
        self._may_set: dict[int, bool] | None = None
        self._capped: dict[int, float] = {}  # index -> W the agent set
        self._before: dict[int, int] = {}  # index -> mW to restore (the default limit)
        try:
            nvml_module.nvmlInit()
        except nvml_module.NVMLError as exc:
            raise NvmlUnavailable(f"NVML did not initialise: {exc}") from exc
        try:
            count = nvml_module.nvmlDeviceGetCount()
            if count < 1:
                raise NvmlUnavailable("NVML sees no GPU")
            self._handles = [nvml_module.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        except (nvml_module.NVMLError, NvmlUnavailable) as exc:
            self.close()
            if isinstance(exc, NvmlUnavailable):
                raise
            raise NvmlUnavailable(f"NVML did not list the GPUs: {exc}") from exc
        self.driver_version = self._text(self._query_plain("nvmlSystemGetDriverVersion"))
        self.devices = tuple(self._static(i) for i in range(count))

    # -- the one place where NVML errors become None --------------------------------------------

    def _query(self, index: int, call: NvmlCall) -> Any | None:
        """``call`` on GPU ``index``; None where the card does not (or will not) answer."""
        if (index, call.key) in self._unsupported:
            return None
        nvml = self._nvml
        try:
            args = [getattr(nvml, a) for a in call.args]
            return getattr(nvml, call.fn)(self._handles[index], *args)
        except AttributeError:
            # Bindings older than the function or constant: the reading is not offered.
            log.debug("GPU %d: %s is not in these NVML bindings", index, call.key)
            self._unsupported.add((index, call.key))
        except nvml.NVMLError as exc:
            # NOT_SUPPORTED, NO_PERMISSION, UNKNOWN, GPU_IS_LOST ...: no reading this time.
            log.debug("GPU %d: %s -> %s", index, call.key, type(exc).__name__)
            not_supported = getattr(nvml, "NVMLError_NotSupported", None)
            if not_supported is not None and isinstance(exc, not_supported):
                self._unsupported.add((index, call.key))
        return None

    def _query_plain(self, fn: str) -> Any | None:
        try:
            return getattr(self._nvml, fn)()
        except (AttributeError, self._nvml.NVMLError) as exc:
            log.debug("%s -> %s", fn, type(exc).__name__)
            return None

    @staticmethod
    def _text(value: Any) -> str | None:
        if value is None:
            return None
        return value.decode(errors="replace") if isinstance(value, bytes) else str(value)

    # -- reading ------------------------------------------------------------------------------

    def _static(self, i: int) -> GpuInfo:
        limits = self._query(i, LIMIT_RANGE)
        lo, hi = (limits[0], limits[1]) if limits is not None else (None, None)
        return GpuInfo(
            index=i,
            name=self._text(self._query(i, NAME)) or f"NVIDIA GPU {i}",
            uuid=self._text(self._query(i, UUID)),
            power_limit_min_w=_mw_to_w(lo),
            power_limit_max_w=_mw_to_w(hi),
            temp_slowdown_c=_num(self._query(i, TEMP_SLOWDOWN)),
            temp_shutdown_c=_num(self._query(i, TEMP_SHUTDOWN)),
        )

    def read(self) -> tuple[GpuReading, ...]:
        """One reading per GPU; fields the card does not offer are None."""
        fresh = self._reads % self._slow_every == 0
        energy = self._reads % self._energy_every == 0
        self._reads += 1
        return tuple(
            self._read_one(info, fresh_slow=fresh, read_energy=energy) for info in self.devices
        )

    def _query_slow(self, index: int, call: NvmlCall, *, fresh: bool) -> Any | None:
        key = (index, call.key)
        if fresh or key not in self._slow:
            self._slow[key] = self._query(index, call)
        return self._slow[key]

    def _read_one(
        self, info: GpuInfo, *, fresh_slow: bool = True, read_energy: bool = True
    ) -> GpuReading:
        i = info.index
        # Power and energy first: closest to the time the snapshot is stamped with. The energy
        # counter costs ~4 ms of driver time a read on an H100 (bench/agent_tick_costs.py), so
        # the agent reads it every few ticks; a tick without it says None, and the accountant
        # books the whole delta at the next read (domain/heat.py).
        power = self._query(i, POWER)
        energy = self._query(i, ENERGY) if read_energy else None
        util = self._query(i, UTIL)
        mem = self._query_slow(i, MEMORY, fresh=fresh_slow)
        return GpuReading(
            index=i,
            name=info.name,
            uuid=info.uuid,
            power_w=_mw_to_w(power),
            energy_mj=_int(energy),
            temp_c=_num(self._query(i, TEMP)),
            fan_pct=_num(self._query_slow(i, FAN, fresh=fresh_slow)),
            util_gpu_pct=_num(getattr(util, "gpu", None)),
            util_mem_pct=_num(getattr(util, "memory", None)),
            clock_sm_mhz=_num(self._query_slow(i, CLOCK_SM, fresh=fresh_slow)),
            clock_mem_mhz=_num(self._query_slow(i, CLOCK_MEM, fresh=fresh_slow)),
            mem_used_bytes=_int(getattr(mem, "used", None)),
            mem_total_bytes=_int(getattr(mem, "total", None)),
            power_limit_w=_mw_to_w(self._query_slow(i, LIMIT, fresh=fresh_slow)),
            power_limit_min_w=info.power_limit_min_w,
            power_limit_max_w=info.power_limit_max_w,
            temp_slowdown_c=info.temp_slowdown_c,
            temp_shutdown_c=info.temp_shutdown_c,
        )

    @property
    def module(self) -> Any:
        """The NVML module in use (``pynvml``, or a test's fake), initialised."""
        return self._nvml

    # -- the power cap --------------------------------------------------------------------------

    def power_limit_control(self) -> tuple[tuple[int, float, float], ...]:
        """``(index, min_w, max_w)`` of each GPU whose power limit this agent may set.

        Probed once: the current limit is set again (no change to the card). NO_PERMISSION
        (not root, no privileged helper) or NOT_SUPPORTED (the card has no settable limit)
        leave that GPU out, and the heating controller falls back to a duty cycle.
        """
        with self._limit_lock:
            if self._may_set is None:
                self._may_set = {d.index: self._probe_set(d) for d in self.devices}
            return tuple(
                (d.index, d.power_limit_min_w, d.power_limit_max_w)
                for d in self.devices
                if self._may_set.get(d.index)
                and d.power_limit_min_w is not None
                and d.power_limit_max_w is not None
            )

    def _probe_set(self, info: GpuInfo) -> bool:
        current = self._query(info.index, LIMIT)
        if current is None or info.power_limit_min_w is None:
            return False
        ok, why = self._set_mw(info.index, int(current))
        if ok:
            log.info("GPU %d: the agent may set its power limit", info.index)
        else:
            log.info("GPU %d: the agent may not set its power limit (%s)", info.index, why)
        return ok

    def _set_mw(self, index: int, mw: int) -> tuple[bool, str]:
        nvml = self._nvml
        try:
            getattr(nvml, SET_LIMIT)(self._handles[index], mw)
        except AttributeError:
            return False, "not in these NVML bindings"
        except nvml.NVMLError as exc:
            return False, type(exc).__name__
        return True, ""

    def set_power_limit(self, index: int, watts: float) -> float | None:
        """Cap GPU ``index`` at ``watts`` (clamped to its range); the watts set, or None.

        None where the agent may not set it; a refusal (NO_PERMISSION, NOT_SUPPORTED) is
        remembered, so the next call does not ask the driver again.
        """
        if index not in {i for i, _, _ in self.power_limit_control()}:
            return None
        info = self.devices[index]
        assert info.power_limit_min_w is not None and info.power_limit_max_w is not None
        watts = min(max(watts, info.power_limit_min_w), info.power_limit_max_w)
        with self._limit_lock:
            if self._capped.get(index) == watts:
                return watts
            if index not in self._before:
                default = self._query(index, DEFAULT_LIMIT)
                if default is None:
                    default = self._query(index, LIMIT)
                if default is None:
                    return None
                self._before[index] = int(default)
            ok, why = self._set_mw(index, round(watts * 1000))
            if not ok:
                log.info("GPU %d: its power limit was not set (%s)", index, why)
                if why in _REFUSALS and self._may_set is not None:
                    self._may_set[index] = False
                return None
            self._capped[index] = watts
            self._slow.pop((index, LIMIT.key), None)  # show the new limit at the next read
            return watts

    def restore_power_limit(self, index: int) -> None:
        """Give GPU ``index`` its default power limit back, where the agent had capped it."""
        with self._limit_lock:
            if index not in self._capped:
                return
            del self._capped[index]
            before = self._before.get(index)
            if before is None:
                return
            ok, why = self._set_mw(index, before)
            if ok:
                log.info("GPU %d: its power limit is back at %.0f W", index, before / 1000)
            else:
                log.warning("GPU %d: its power limit could not be restored (%s)", index, why)
            self._slow.pop((index, LIMIT.key), None)

    @property
    def power_limits_set(self) -> dict[int, float]:
        """The caps this agent has set now, by GPU index."""
        with self._limit_lock:
            return dict(self._capped)

    def restore_power_limits(self) -> None:
        for index in list(self.power_limits_set):
            self.restore_power_limit(index)

    def describe(self) -> list[str]:
        """``["GPU 0: NVIDIA H100 80GB HBM3 (NVML)"]``."""
        return [f"GPU {d.index}: {d.name} (NVML)" for d in self.devices]

    def close(self) -> None:
        """Shut NVML down; safe to call twice."""
        if self._closed:
            return
        self.restore_power_limits()  # a cap outlives the agent otherwise
        self._closed = True
        try:
            self._nvml.nvmlShutdown()
        except self._nvml.NVMLError as exc:
            log.debug("nvmlShutdown -> %s", type(exc).__name__)


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _mw_to_w(value: Any) -> float | None:
    return None if value is None else float(value) / 1000.0
