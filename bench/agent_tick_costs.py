"""Benchmark: what one agent tick costs, part by part (CPU time, user and system).

Times each part of the sampler's tick on its own over ``--ticks`` repetitions: the NVML read
(where a GPU is present), the host read (psutil), the RAPL read, the accountant, and the
store's write. On a sandboxed host (gVisor) system calls cost far more than on bare metal,
so the split shows which part to cut when the agent's CPU figure is over its target.
Also prints the resident memory before and after NVML starts.

Run: ``PYTHONPATH=app python3 bench/agent_tick_costs.py [--ticks 200]``.
"""

from __future__ import annotations

import argparse
import platform
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from heatshare.domain.heat import EstimateModel, HeatAccountant
from heatshare.sensors.host import HostSensor
from heatshare.sensors.rapl import RaplSensor


def cost(fn: Callable[[], object], ticks: int) -> tuple[float, float]:
    """Mean (user, system) CPU milliseconds per call."""
    fn()
    t0 = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(ticks):
        fn()
    t1 = resource.getrusage(resource.RUSAGE_SELF)
    user = t1.ru_utime - t0.ru_utime
    system = t1.ru_stime - t0.ru_stime
    return 1000 * user / ticks, 1000 * system / ticks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ticks", type=int, default=200)
    args = parser.parse_args()
    proc = psutil.Process()
    print(
        f"machine: {platform.node()} {platform.machine()} {psutil.cpu_count()} CPUs, "
        f"Python {platform.python_version()}"
    )
    rss0 = proc.memory_info().rss
    parts: dict[str, Callable[[], object]] = {}
    gpus = None
    try:
        import pynvml

        from heatshare.sensors import NVML_SLOW_EVERY
        from heatshare.sensors.nvml import NvmlSensor, NvmlUnavailable

        try:
            gpus = NvmlSensor(pynvml, slow_every=NVML_SLOW_EVERY)
            parts["nvml (all fields each tick)"] = NvmlSensor(pynvml).read
            parts[f"nvml (slow fields every {NVML_SLOW_EVERY})"] = gpus.read
            from heatshare.sensors import nvml as nv

            for call in nv.TICK_CALLS:
                parts[f"  nvml {call.key}"] = lambda call=call: gpus._query(0, call)
        except NvmlUnavailable as exc:
            print(f"NVML: {exc}")
    except ImportError:
        print("NVML: no pynvml")
    rss1 = proc.memory_info().rss
    print(f"RSS before NVML {rss0 / 2**20:.1f} MiB, after {rss1 / 2**20:.1f} MiB")
    host = HostSensor()
    rapl = RaplSensor()
    parts["host (psutil)"] = host.read
    parts["rapl"] = rapl.read
    from heatshare.sensors import SensorSuite

    suite = SensorSuite(host=host, nvml=gpus, rapl=rapl)
    acct = HeatAccountant(estimate=EstimateModel(10.0, 65.0))
    snap = suite.read()
    parts["accountant"] = lambda: acct.update(snap)
    from heatshare.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp) / "h.sqlite3", now=time.time())
        values = {f"s{i}": float(i) for i in range(14)}
        parts["store write (14 series)"] = lambda: store.write_samples(time.time(), values)
        for name, fn in parts.items():
            user, system = cost(fn, args.ticks)
            print(f"{name:34s} user {user:7.3f} ms  system {system:7.3f} ms  per tick")
        store.close()
    suite.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
