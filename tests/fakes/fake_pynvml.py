"""A module-like stand-in for ``pynvml`` that replays a recording of real cards.

The recording (``tests/data/nvml/*.json``, written by ``bench/nvml_check.py --record``) holds,
for every device, the answer to each call the sensor makes: ``{"value": ...}`` or
``{"error": "NVMLError_NotSupported"}``. Calls made once (name, limits' range, thresholds) are
under ``devices[i].static``; calls made every tick under ``ticks[k].devices[i]``. A call is
named ``fn`` or ``fn(CONST,...)`` with the names of its constant arguments.

``advance()`` moves to the next recorded tick. Every call is counted in ``calls``, so a test
can see what the sensor asked and how often.

Setting the power limit (``nvmlDeviceSetPowerManagementLimit``) answers as ``set_limit`` says:
None accepts (and the limit read afterwards is the one set), else the error class named
(``"NVMLError_NoPermission"`` as for a normal user, ``"NVMLError_NotSupported"`` as on cards
without a settable limit). Left out, the answer recorded under GPU 0's ``static`` calls
(``{"error": ...}`` or ``{"value": null}``), else NO_PERMISSION.
``override(i, key, value)`` makes GPU ``i`` answer ``key`` with ``value`` from now on (a GPU
that gets hot, a fan that stops).

Graphics processes (``nvmlDeviceGetGraphicsRunningProcesses``) are not in recordings (they are
whatever runs on the card at the time): a test sets ``graphics_processes`` and gets them back
the way pynvml hands them over (see :meth:`FakePynvml.nvmlDeviceGetGraphicsRunningProcesses`).
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import EllipsisType, SimpleNamespace
from typing import Any

DATA = Path(__file__).resolve().parent.parent / "data" / "nvml"
SET_LIMIT = "nvmlDeviceSetPowerManagementLimit"

# pynvml's values, used where a recording does not carry its own "constants".
DEFAULT_CONSTANTS = {
    "NVML_TEMPERATURE_GPU": 0,
    "NVML_CLOCK_SM": 1,
    "NVML_CLOCK_MEM": 2,
    "NVML_TEMPERATURE_THRESHOLD_SHUTDOWN": 0,
    "NVML_TEMPERATURE_THRESHOLD_SLOWDOWN": 1,
}


class NVMLError(Exception):
    """The fake's base error class, like ``pynvml.NVMLError``."""

    def __str__(self) -> str:
        return type(self).__name__.removeprefix("NVMLError_")


_ERRORS: dict[str, type[NVMLError]] = {}


def error_class(name: str) -> type[NVMLError]:
    """The error class called ``name`` (``"NVMLError_NotSupported"``), one per name."""
    if not name.startswith("NVMLError_"):
        raise ValueError(f"not an NVML error class name: {name}")
    if name not in _ERRORS:
        _ERRORS[name] = type(name, (NVMLError,), {"__module__": __name__})
    return _ERRORS[name]


def load_recording(name: str = "recording.json") -> dict[str, Any]:
    """A recording from ``tests/data/nvml``."""
    data: dict[str, Any] = json.loads((DATA / name).read_text("utf-8"))
    return data


class NVMLLibraryMismatchError(Exception):
    """pynvml's error for an unversioned call the loaded driver lacks (not an NVMLError)."""


# What pynvml puts in a process entry's instance ids outside MIG (0xFFFFFFFF, "no instance").
NO_INSTANCE = 0xFFFFFFFF


class _Handle:
    def __init__(self, index: int) -> None:
        self.index = index

    def __repr__(self) -> str:
        return f"<fake nvmlDevice {self.index}>"


class FakePynvml:
    """Replays ``recording``.

    Args:
        recording: the parsed JSON.
        init_error: the error class ``nvmlInit`` should raise (``"NVMLError_DriverNotLoaded"``).
        auto_advance: a call key; asking it again on GPU 0 within one tick moves to the next
            tick, wrapping round at the end (for code that reads in its own loop, like the
            bench script).
    """

    NVMLError = NVMLError
    NVMLLibraryMismatchError = NVMLLibraryMismatchError

    def __init__(
        self,
        recording: dict[str, Any],
        *,
        init_error: str | None = None,
        auto_advance: str | None = None,
        set_limit: str | EllipsisType | None = ...,
    ) -> None:
        self.recording = copy.deepcopy(recording)
        self.devices: list[dict[str, Any]] = self.recording["devices"]
        self.ticks: list[dict[str, Any]] = self.recording["ticks"]
        self.tick = 0
        self.calls: Counter[str] = Counter()
        self.init_count = 0  # NVML counts nvmlInit calls; each nvmlShutdown undoes one
        # GPU index -> graphics processes, each {"pid": ..., "usedGpuMemory": bytes or None}.
        self.graphics_processes: dict[int, list[dict[str, Any]]] = {}
        # GPU index -> the NVML error class name its graphics-process call raises.
        self.graphics_errors: dict[int, str] = {}
        # The driver predates the unversioned (_v3) call: only _v2 answers.
        self.graphics_v2_only = False
        self._auto_advance = auto_advance
        self._asked_this_tick = False
        self._init_error = init_error or self.recording.get("init", {}).get("error")
        if set_limit is ...:
            recorded = self.devices[0]["static"].get(SET_LIMIT) if self.devices else None
            set_limit = "NVMLError_NoPermission" if recorded is None else recorded.get("error")
        self.set_limit: str | None = set_limit
        self.limits_set: dict[int, list[int]] = {}  # index -> every limit set, in mW
        self._overrides: dict[tuple[int, str], dict[str, Any]] = {}
        for name, value in {**DEFAULT_CONSTANTS, **self.recording.get("constants", {})}.items():
            setattr(self, name, value)

    # -- module-level functions ---------------------------------------------------------------

    def nvmlInit(self) -> None:
        self.calls["nvmlInit"] += 1
        if self._init_error:
            raise error_class(self._init_error)()
        self.init_count += 1

    def nvmlShutdown(self) -> None:
        self.calls["nvmlShutdown"] += 1
        self._check_init()
        self.init_count -= 1

    def nvmlSystemGetDriverVersion(self) -> Any:
        self.calls["nvmlSystemGetDriverVersion"] += 1
        self._check_init()
        return self._unwrap(self.recording.get("driver_version", {"error": "NVMLError_Unknown"}))

    def nvmlDeviceGetCount(self) -> int:
        self.calls["nvmlDeviceGetCount"] += 1
        self._check_init()
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> _Handle:
        self.calls["nvmlDeviceGetHandleByIndex"] += 1
        self._check_init()
        if not 0 <= index < len(self.devices):
            raise error_class("NVMLError_InvalidArgument")()
        return _Handle(index)

    def nvmlDeviceSetPowerManagementLimit(self, handle: _Handle, limit_mw: int) -> None:
        self.calls["nvmlDeviceSetPowerManagementLimit"] += 1
        self._check_init()
        if self.set_limit is not None:
            raise error_class(self.set_limit)()
        lo, hi = self._unwrap(
            self.devices[handle.index]["static"]["nvmlDeviceGetPowerManagementLimitConstraints"]
        )
        if not lo <= limit_mw <= hi:
            raise error_class("NVMLError_InvalidArgument")()
        self.limits_set.setdefault(handle.index, []).append(int(limit_mw))
        self._overrides[(handle.index, "nvmlDeviceGetPowerManagementLimit")] = {
            "value": int(limit_mw)
        }

    def nvmlDeviceGetPowerManagementDefaultLimit(self, handle: _Handle) -> Any:
        self.calls["nvmlDeviceGetPowerManagementDefaultLimit"] += 1
        self._check_init()
        static = self.devices[handle.index]["static"]
        entry = static.get("nvmlDeviceGetPowerManagementDefaultLimit")
        if entry is None:  # older recordings: the limit of the first tick was the default
            entry = self.ticks[0]["devices"][handle.index]["nvmlDeviceGetPowerManagementLimit"]
        return self._unwrap(entry)

    def override(
        self, index: int, key: str, value: Any = None, *, error: str | None = None
    ) -> None:
        """GPU ``index`` answers ``key`` with ``value`` (or raises ``error``) from now on."""
        self._overrides[(index, key)] = {"error": error} if error else {"value": value}

    def clear_override(self, index: int, key: str) -> None:
        """GPU ``index`` answers ``key`` from the recording again."""
        self._overrides.pop((index, key), None)

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle: _Handle) -> list[SimpleNamespace]:
        """As pynvml: ``[]`` when none runs (a headless card), else one object per process
        with ``pid``, ``usedGpuMemory`` (bytes; None where the driver does not say, as under
        Windows WDDM), ``gpuInstanceId`` and ``computeInstanceId`` (0xFFFFFFFF outside MIG)."""
        self.calls["nvmlDeviceGetGraphicsRunningProcesses"] += 1
        if self.graphics_v2_only:
            raise NVMLLibraryMismatchError(
                "Unversioned function called and the pyNVML version does not match the NVML "
                "lib version. Either use matching pyNVML and NVML lib versions or use a "
                "versioned function such as nvmlDeviceGetGraphicsRunningProcesses_v2"
            )
        return self._graphics(handle)

    def nvmlDeviceGetGraphicsRunningProcesses_v2(self, handle: _Handle) -> list[SimpleNamespace]:
        self.calls["nvmlDeviceGetGraphicsRunningProcesses_v2"] += 1
        return self._graphics(handle)

    def _graphics(self, handle: _Handle) -> list[SimpleNamespace]:
        self._check_init()
        error = self.graphics_errors.get(handle.index)
        if error:
            raise error_class(error)()
        return [
            SimpleNamespace(
                pid=p["pid"],
                usedGpuMemory=p.get("usedGpuMemory"),
                gpuInstanceId=p.get("gpuInstanceId", NO_INSTANCE),
                computeInstanceId=p.get("computeInstanceId", NO_INSTANCE),
            )
            for p in self.graphics_processes.get(handle.index, [])
        ]

    def __getattr__(self, name: str) -> Any:
        # Only reached for names not set above: error classes and the recorded device calls.
        if name.startswith("NVMLError_"):
            return error_class(name)
        if name.startswith("nvmlDevice") and self._recorded(name):
            return self._device_call(name)
        raise AttributeError(name)  # as old bindings lack newer functions

    # -- replay -------------------------------------------------------------------------------

    def advance(self) -> None:
        """Move to the next recorded tick."""
        if self.tick + 1 >= len(self.ticks):
            raise IndexError("the recording has no more ticks")
        self.tick += 1
        self._asked_this_tick = False

    @property
    def t_s(self) -> float:
        """The recorded time of the current tick, seconds after the first."""
        return float(self.ticks[self.tick]["t_s"])

    def _recorded(self, fn: str) -> bool:
        keys = [*self.devices[0]["static"], *self.ticks[0]["devices"][0]] if self.devices else []
        return any(k == fn or k.startswith(fn + "(") for k in keys)

    def _device_call(self, fn: str) -> Callable[..., Any]:
        def call(handle: _Handle, *args: Any) -> Any:
            self._check_init()
            key = fn if not args else f"{fn}({','.join(self._const_name(fn, a) for a in args)})"
            self.calls[key] += 1
            i = handle.index
            if key == self._auto_advance and i == 0:
                if self._asked_this_tick:
                    self.tick = (self.tick + 1) % len(self.ticks)
                self._asked_this_tick = True
            per_tick = self.ticks[self.tick]["devices"][i]
            entry = self._overrides.get((i, key))
            if entry is None:
                entry = per_tick.get(key, self.devices[i]["static"].get(key))
            if entry is None:
                raise AssertionError(f"the recording holds no answer to {key} on GPU {i}")
            return self._unwrap(entry)

        call.__name__ = fn
        return call

    def _const_name(self, fn: str, value: Any) -> str:
        # Constants share values across families (NVML_TEMPERATURE_GPU and
        # NVML_TEMPERATURE_THRESHOLD_SHUTDOWN are both 0), so match within this call's keys.
        keys = [*self.devices[0]["static"], *self.ticks[0]["devices"][0]]
        for key in keys:
            if key.startswith(fn + "("):
                for name in key[len(fn) + 1 : -1].split(","):
                    if getattr(self, name, None) == value:
                        return str(name)
        raise AssertionError(f"{fn} called with an unrecorded argument {value!r}")

    @staticmethod
    def _unwrap(entry: dict[str, Any]) -> Any:
        if "error" in entry:
            raise error_class(entry["error"])()
        value = entry["value"]
        if isinstance(value, dict):
            return SimpleNamespace(**value)  # a ctypes structure: fields as attributes
        return value

    def _check_init(self) -> None:
        if self.init_count < 1:
            raise error_class("NVMLError_Uninitialized")()
