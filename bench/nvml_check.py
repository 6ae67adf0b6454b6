#!/usr/bin/env python3
"""Check the real NVML path on a machine with an NVIDIA GPU, and record a replay for the tests.

Run from the repository root (needs nvidia-ml-py and psutil; no Qt, no pydantic)::

    PYTHONPATH=app python3 bench/nvml_check.py --ticks 10 --record tests/data/nvml/recording.json

1. Reads ``--ticks`` ticks, ``--period`` s apart, straight from ``pynvml``: every call the sensor
   makes (``heatshare.sensors.nvml.STATIC_CALLS`` and ``TICK_CALLS``), each answer saved raw
   or as the exception's class name. ``--record PATH`` writes them as the recording that
   ``tests/fakes/fake_pynvml.py`` replays.
2. Reads as many ticks through ``NvmlSensor`` and ``HeatAccountant`` and prints them, and the
   integrated energy beside the counter's delta and the power readings' integral.
3. Prints one JSON line of pass/fail checks last, and exits 0 when all pass (1 otherwise, 2 when
   NVML is not usable here).

``--load-after K`` starts a matrix-multiply load (PyTorch, where installed) on every GPU after
K recorded ticks, so the recording holds idle and loaded readings.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import importlib.metadata
import itertools
import json
import math
import platform
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pynvml

from heatshare.domain.heat import EstimateModel, HeatAccountant, HeatTick
from heatshare.domain.readings import GpuReading, HostReading, Provenance, Snapshot
from heatshare.sensors.nvml import (
    FIELDS_BY_CALL,
    STATIC_CALLS,
    TICK_CALLS,
    NvmlCall,
    NvmlSensor,
    NvmlUnavailable,
)

FORMAT = "heatshare-nvml-recording/1"


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def encode(value: Any) -> Any:
    """A pynvml answer as JSON: ctypes structures become objects of their fields."""
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, list | tuple):
        return [encode(v) for v in value]
    fields = getattr(value, "_fields_", None)
    if fields is not None:
        return {f[0]: encode(getattr(value, f[0])) for f in fields}
    if isinstance(value, SimpleNamespace):  # the tests' fake answers structures so
        return {k: encode(v) for k, v in vars(value).items()}
    return value


def answer(fn: Callable[..., Any], *args: Any) -> dict[str, Any]:
    try:
        return {"value": encode(fn(*args))}
    except pynvml.NVMLError as exc:
        return {"error": type(exc).__name__}


def device_call(handle: Any, call: NvmlCall) -> dict[str, Any]:
    fn = getattr(pynvml, call.fn, None)
    if fn is None:
        return {"error": "NVMLError_FunctionNotFound"}
    return answer(fn, handle, *(getattr(pynvml, a) for a in call.args))


def every(period: float, ticks: int) -> Any:
    """Yield tick numbers on fixed deadlines (no drift), with the monotonic time of each."""
    start = time.monotonic()
    for k in range(ticks):
        delay = start + k * period - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield k, time.monotonic()


def record(ticks: int, period: float, on_tick: Callable[[int], None]) -> dict[str, Any]:
    count = pynvml.nvmlDeviceGetCount()
    handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
    constants = sorted({a for c in (*STATIC_CALLS, *TICK_CALLS) for a in c.args})
    rec: dict[str, Any] = {
        "format": FORMAT,
        "note": "recorded from real cards by bench/nvml_check.py --record",
        "source": {
            "host": platform.node(),
            "python": platform.python_version(),
            "nvidia_ml_py": _dist_version("nvidia-ml-py"),
            "recorded_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "period_s": period,
        },
        "driver_version": answer(pynvml.nvmlSystemGetDriverVersion),
        "constants": {name: getattr(pynvml, name) for name in constants},
        "devices": [
            {"index": i, "static": {c.key: device_call(h, c) for c in STATIC_CALLS}}
            for i, h in enumerate(handles)
        ],
        "ticks": [],
    }
    t0 = None
    for k, now in every(period, ticks):
        on_tick(k)
        t0 = now if t0 is None else t0
        rec["ticks"].append(
            {
                "t_s": round(now - t0, 6),
                "devices": [{c.key: device_call(h, c) for c in TICK_CALLS} for h in handles],
            }
        )
    return rec


def through_sensor(ticks: int, period: float) -> list[tuple[Snapshot, HeatTick]]:
    sensor = NvmlSensor(pynvml)
    print(f"driver {sensor.driver_version}; " + "; ".join(sensor.describe()))
    # The host is left empty: the CPU is not what this script checks.
    acc = HeatAccountant(estimate=EstimateModel(0.0, 0.0), max_gap_s=max(5.0, 3 * period))
    out = []
    try:
        for _k, _ in every(period, ticks):
            mono = time.monotonic()
            snap = Snapshot(
                mono_s=mono, wall_ts=time.time(), host=HostReading(), gpus=sensor.read()
            )
            tick = acc.update(snap)
            out.append((snap, tick))
            for g in snap.gpus:
                comp = tick.component(f"gpu{g.index}")
                print(
                    f"t={mono - out[0][0].mono_s:6.2f}s gpu{g.index} power={g.power_w} W "
                    f"energy={g.energy_mj} mJ temp={g.temp_c} °C fan={g.fan_pct} % "
                    f"util={g.util_gpu_pct}/{g.util_mem_pct} % clocks={g.clock_sm_mhz}/"
                    f"{g.clock_mem_mhz} MHz mem={g.mem_used_bytes}/{g.mem_total_bytes} B "
                    f"limit={g.power_limit_w} W [{g.power_limit_min_w}, {g.power_limit_max_w}] "
                    f"slowdown/shutdown={g.temp_slowdown_c}/{g.temp_shutdown_c} °C | "
                    f"heat {comp.power_w if comp else None} W "
                    f"({comp.provenance if comp else None}), {comp.energy_j if comp else 0:.3f} J"
                )
    finally:
        sensor.close()
    return out


def _check(ok: bool | None, detail: str) -> dict[str, Any]:
    return {"ok": ok, "detail": detail}


def checks(rec: dict[str, Any], run: list[tuple[Snapshot, HeatTick]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    readings: list[GpuReading] = [g for snap, _ in run for g in snap.gpus]
    n = len(rec["devices"])

    # 1. The energy counter never goes backwards (in the recording and through the sensor).
    bad, seen = [], 0
    for i in range(n):
        raw = [t["devices"][i][TICK_CALLS[1].key].get("value") for t in rec["ticks"]]
        mine = [g.energy_mj for g in readings if g.index == i]
        for series in (raw, mine):
            vals = [v for v in series if v is not None]
            seen += len(vals)
            bad += [f"gpu{i}: {a} -> {b}" for a, b in itertools.pairwise(vals) if b < a]
    out["energy_counter_monotonic"] = _check(
        None if not seen else not bad, "; ".join(bad) or f"{seen} readings"
    )

    # 2. Power within the card's limits.
    bad = []
    for g in readings:
        ceiling = (g.power_limit_max_w or 1500.0) * 1.1  # short excursions above the limit
        if g.power_w is not None and not 0.0 <= g.power_w <= ceiling:
            bad.append(f"gpu{g.index}: {g.power_w} W outside [0, {ceiling:.0f}]")
        lo, hi, lim = g.power_limit_min_w, g.power_limit_max_w, g.power_limit_w
        if None not in (lo, hi, lim) and not lo <= lim <= hi:  # type: ignore[operator]
            bad.append(f"gpu{g.index}: limit {lim} W outside [{lo}, {hi}]")
    have = any(g.power_w is not None for g in readings)
    out["power_within_limits"] = _check(None if not have else not bad, "; ".join(bad) or "ok")

    # 3. Temperatures plausible.
    bad = []
    for g in readings:
        if g.temp_c is not None and not 0.0 < g.temp_c < 110.0:
            bad.append(f"gpu{g.index}: {g.temp_c} °C")
        slow, shut = g.temp_slowdown_c, g.temp_shutdown_c
        if slow is not None and shut is not None and not 40.0 < slow <= shut < 130.0:
            bad.append(f"gpu{g.index}: slowdown {slow} °C, shutdown {shut} °C")
        if g.temp_c is not None and shut is not None and g.temp_c >= shut:
            bad.append(f"gpu{g.index}: {g.temp_c} °C at or above shutdown {shut} °C")
    have = any(g.temp_c is not None for g in readings)
    out["temps_plausible"] = _check(None if not have else not bad, "; ".join(bad) or "ok")

    # 4 and 5. A call NVML refused is None through the sensor; one it answered is not None.
    refused, answered, missing = [], [], []
    for i, dev in enumerate(rec["devices"]):
        for call in (*STATIC_CALLS, *TICK_CALLS):
            entries = (
                [dev["static"][call.key]]
                if call in STATIC_CALLS
                else [t["devices"][i][call.key] for t in rec["ticks"]]
            )
            fields = FIELDS_BY_CALL.get(call.key, ())
            values = [getattr(g, f) for g in readings if g.index == i for f in fields]
            if all(e.get("error") == "NVMLError_NotSupported" for e in entries):
                refused.append(f"gpu{i} {call.key}")
                if any(v is not None for v in values):
                    missing.append(f"gpu{i} {call.key}: NOT_SUPPORTED yet a value")
            elif all("value" in e for e in entries):
                answered.append(call.key)
                if any(v is None for v in values):
                    missing.append(f"gpu{i} {call.key}: answered yet None")
    out["not_supported_fields_are_none"] = _check(
        not [m for m in missing if "NOT_SUPPORTED" in m],
        f"refused: {', '.join(refused) or 'none'}",
    )
    out["supported_fields_present"] = _check(
        not [m for m in missing if "answered" in m], "; ".join(missing) or "ok"
    )

    # 6 and 7. The accountant's energy equals the counter's delta; power readings agree roughly.
    for i in range(n):
        snaps = [(s.mono_s, g) for s, _ in run for g in s.gpus if g.index == i]
        ticks = [t.component(f"gpu{i}") for _, t in run]
        integrated = sum(c.energy_j for c in ticks if c is not None)
        energies = [g.energy_mj for _, g in snaps]
        if None in energies or len(energies) < 2:
            out[f"gpu{i}_counter_matches_accountant"] = _check(None, "no energy counter")
            continue
        counter_j = (energies[-1] - energies[0]) / 1000.0  # type: ignore[operator]
        power_j = sum(
            (a[1].power_w + b[1].power_w) / 2 * (b[0] - a[0])
            for a, b in itertools.pairwise(snaps)
            if a[1].power_w is not None and b[1].power_w is not None
        )
        counted = all(
            c is not None and c.provenance is Provenance.ENERGY_COUNTER for c in ticks[1:]
        )
        print(
            f"gpu{i}: accountant {integrated:.3f} J, counter delta {counter_j:.3f} J, "
            f"power readings {power_j:.3f} J over {snaps[-1][0] - snaps[0][0]:.3f} s"
        )
        out[f"gpu{i}_counter_matches_accountant"] = _check(
            counted and math.isclose(integrated, counter_j, rel_tol=1e-9, abs_tol=1e-6),
            f"{integrated:.3f} J vs {counter_j:.3f} J",
        )
        ratio = counter_j / power_j if power_j > 0 else math.nan
        # Loose on purpose: power readings are averages over windows NVML chooses; this catches
        # unit slips (W vs mW, J vs mJ), which are off by a thousand.
        out[f"gpu{i}_counter_agrees_with_power"] = _check(
            0.5 <= ratio <= 2.0 if power_j > 0 else None, f"ratio {ratio:.3f}"
        )
    return out


def prepare_load() -> Callable[[], Callable[[], None]]:
    """Get matrix multiplies ready on every GPU (PyTorch's start-up is slow, so not in a tick).

    Returns a function that starts them and returns the function that stops them.
    """
    try:
        torch = importlib.import_module("torch")  # optional: only to make the cards work
    except ImportError:
        print("no PyTorch here: the cards stay idle")
        return lambda: lambda: None
    stop = threading.Event()
    n = torch.cuda.device_count()
    mats = [
        [torch.randn(8192, 8192, device=f"cuda:{d}", dtype=torch.bfloat16) for _ in range(2)]
        for d in range(n)
    ]
    for d in range(n):
        torch.cuda.synchronize(d)

    def work(dev: int) -> None:
        a, b = mats[dev]
        while not stop.is_set():
            for _ in range(20):
                a = (a @ b).clamp_(-1, 1)
            torch.cuda.synchronize(dev)

    def start() -> Callable[[], None]:
        threads = [threading.Thread(target=work, args=(d,), daemon=True) for d in range(n)]
        for t in threads:
            t.start()

        def halt() -> None:
            stop.set()
            for t in threads:
                t.join(timeout=10)

        return halt

    return start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ticks", type=int, default=10)
    p.add_argument("--period", type=float, default=1.0)
    p.add_argument("--record", type=Path, help="write the raw recording here (JSON)")
    p.add_argument("--load-after", type=int, default=None, metavar="K")
    args = p.parse_args(argv)

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        print(json.dumps({"ok": False, "error": f"NVML not usable: {exc}"}))
        return 2
    start_load = prepare_load() if args.load_after is not None else None
    halt: Callable[[], None] = lambda: None  # noqa: E731  (replaced once the load starts)

    def on_tick(k: int) -> None:
        nonlocal halt
        if start_load is not None and k == args.load_after:
            halt = start_load()
            print(f"load started before tick {k}")

    try:
        rec = record(args.ticks, args.period, on_tick)
        if args.record:
            args.record.parent.mkdir(parents=True, exist_ok=True)
            args.record.write_text(json.dumps(rec, indent=1) + "\n", "utf-8")
            print(f"recording written to {args.record}")
        try:
            run = through_sensor(args.ticks, args.period)
        except NvmlUnavailable as exc:
            print(json.dumps({"ok": False, "error": str(exc)}))
            return 2
    finally:
        halt()
        pynvml.nvmlShutdown()
    result = checks(rec, run)
    ok = all(c["ok"] is not False for c in result.values())
    print(json.dumps({"ok": ok, "gpus": len(rec["devices"]), "checks": result}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
