"""The real NVML path on a real NVIDIA GPU; skipped where NVML sees none (CI, laptops).

Run on a GPU machine with ``tests/device/run_nvml_check.sh`` (see README.md here).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from heatshare.domain.heat import EstimateModel, HeatAccountant
from heatshare.domain.readings import HostReading, Provenance, Snapshot
from heatshare.sensors import default_sensors
from heatshare.sensors.nvml import NvmlSensor, NvmlUnavailable

pynvml = pytest.importorskip("pynvml")


@pytest.fixture
def sensor() -> Iterator[NvmlSensor]:
    try:
        s = NvmlSensor(pynvml)
    except NvmlUnavailable as exc:
        pytest.skip(f"needs an NVIDIA GPU: {exc}")
    yield s
    s.close()


def test_readings_are_plausible(sensor: NvmlSensor) -> None:
    for g in sensor.read():
        assert g.name
        if g.power_w is not None:
            assert 0.0 < g.power_w <= (g.power_limit_max_w or 1500.0) * 1.1
        if g.temp_c is not None:
            assert 0.0 < g.temp_c < (g.temp_shutdown_c or 110.0)
        if g.mem_used_bytes is not None and g.mem_total_bytes is not None:
            assert 0 <= g.mem_used_bytes <= g.mem_total_bytes
        if g.power_limit_min_w is not None and g.power_limit_max_w is not None:
            assert g.power_limit_min_w <= (g.power_limit_w or g.power_limit_min_w)
            assert (g.power_limit_w or g.power_limit_max_w) <= g.power_limit_max_w


def test_energy_counter_rises_and_is_integrated(sensor: NvmlSensor) -> None:
    acc = HeatAccountant(estimate=EstimateModel(0.0, 0.0))
    ticks = []
    for _ in range(3):
        snap = Snapshot(time.monotonic(), time.time(), HostReading(), sensor.read())
        ticks.append((snap, acc.update(snap)))
        time.sleep(0.5)
    first, last = ticks[0][0], ticks[-1][0]
    for g0, g1 in zip(first.gpus, last.gpus, strict=True):
        c = ticks[-1][1].component(f"gpu{g0.index}")
        assert c is not None
        if g0.energy_mj is None:
            assert c.provenance in (Provenance.POWER_READING, None)
            continue
        assert g1.energy_mj is not None
        assert g1.energy_mj > g0.energy_mj  # a powered card always draws something
        assert c.provenance is Provenance.ENERGY_COUNTER
        parts = [t.component(f"gpu{g0.index}") for _, t in ticks]
        integrated = sum(p.energy_j for p in parts if p is not None)
        assert integrated == pytest.approx((g1.energy_mj - g0.energy_mj) / 1000.0)


def test_default_sensors_find_the_gpu(sensor: NvmlSensor) -> None:
    suite = default_sensors()
    try:
        assert suite.nvml is not None
        assert suite.describe()[0].startswith("GPU 0: ")
        assert len(suite.read().gpus) == len(sensor.devices)
    finally:
        suite.close()
