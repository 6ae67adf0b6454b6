"""The NVML sensor against the fake ``pynvml`` replaying a recording of a real card.

Expectations come from the recording itself, so a new recording (``bench/nvml_check.py
--record``) of any card, with any number of GPUs, keeps these tests meaningful.
"""

from __future__ import annotations

import copy
import importlib.util
import itertools
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from fakes.fake_pynvml import FakePynvml, load_recording
from heatshare.domain.heat import EstimateModel, HeatAccountant
from heatshare.domain.readings import GpuReading, HostReading, Provenance, Snapshot
from heatshare.sensors import HostSensor, SensorSuite, default_sensors
from heatshare.sensors import nvml as nv
from heatshare.sensors.nvml import NvmlSensor, NvmlUnavailable

REPO = Path(__file__).resolve().parents[2]
REC = load_recording()
NOT_SUPPORTED = "NVMLError_NotSupported"


def expected(call: nv.NvmlCall, entry: dict[str, Any]) -> tuple[Any, ...]:
    """What the sensor's fields should hold for one recorded answer (None for an error)."""
    fields = nv.FIELDS_BY_CALL[call.key]
    if "error" in entry:
        return (None,) * len(fields)
    v = entry["value"]
    if call in (nv.POWER, nv.LIMIT):
        return (v / 1000.0,)
    if call is nv.LIMIT_RANGE:
        return (v[0] / 1000.0, v[1] / 1000.0)
    if call is nv.UTIL:
        return (float(v["gpu"]), float(v["memory"]))
    if call is nv.MEMORY:
        return (v["used"], v["total"])
    if call is nv.UUID:
        return (v,)
    return (float(v),) if call is not nv.ENERGY else (v,)


def actual(call: nv.NvmlCall, g: GpuReading) -> tuple[Any, ...]:
    return tuple(getattr(g, f) for f in nv.FIELDS_BY_CALL[call.key])


def replay(rec: dict[str, Any]) -> Iterator[tuple[FakePynvml, NvmlSensor, float]]:
    """Yield (fake, sensor, recorded time) at each tick, the sensor having been made at tick 0."""
    fake = FakePynvml(rec)
    sensor = NvmlSensor(fake)
    try:
        for k in range(len(rec["ticks"])):
            if k:
                fake.advance()
            yield fake, sensor, fake.t_s
    finally:
        sensor.close()


def test_the_recording_holds_what_the_tests_need() -> None:
    assert REC["format"] == "heatshare-nvml-recording/1"
    assert len(REC["ticks"]) >= 3
    keys = {c.key for c in (*nv.STATIC_CALLS, *nv.TICK_CALLS)}
    for dev in REC["devices"]:
        assert set(dev["static"]) == {c.key for c in nv.STATIC_CALLS}
    for t in REC["ticks"]:
        assert len(t["devices"]) == len(REC["devices"])
        for d in t["devices"]:
            assert set(d) | {c.key for c in nv.STATIC_CALLS} == keys
    # The issue asks for a field the card refuses, and a counter that rises.
    answers = [e for t in REC["ticks"] for d in t["devices"] for e in d.values()]
    answers += [e for dev in REC["devices"] for e in dev["static"].values()]
    assert any(e.get("error") == NOT_SUPPORTED for e in answers)
    energies = [t["devices"][0][nv.ENERGY.key].get("value") for t in REC["ticks"]]
    assert None not in energies
    assert energies[-1] > energies[0]


def test_readings_match_the_recording_tick_by_tick() -> None:
    for k, (_fake, sensor, _t) in enumerate(replay(REC)):
        readings = sensor.read()
        assert len(readings) == len(REC["devices"])
        for i, g in enumerate(readings):
            assert g.index == i
            static = REC["devices"][i]["static"]
            name = static[nv.NAME.key].get("value")
            assert g.name == (name if name is not None else f"NVIDIA GPU {i}")
            for call in nv.STATIC_CALLS[1:]:
                assert actual(call, g) == expected(call, static[call.key]), call.key
            for call in nv.TICK_CALLS:
                entry = REC["ticks"][k]["devices"][i][call.key]
                assert actual(call, g) == expected(call, entry), (k, call.key)


def test_slow_readings_are_asked_every_few_ticks_and_carried() -> None:
    every = 3
    fake = FakePynvml(REC)
    sensor = NvmlSensor(fake, slow_every=every)
    ticks = len(REC["ticks"])
    n = len(REC["devices"])
    for k in range(ticks):
        readings = sensor.read()
        for i, g in enumerate(readings):
            for call in nv.TICK_CALLS:
                source = k - k % every if call in nv.SLOW_CALLS else k
                entry = REC["ticks"][source]["devices"][i][call.key]
                assert actual(call, g) == expected(call, entry), (k, call.key)
        if k + 1 < ticks:
            fake.advance()
    asked = -(-ticks // every)  # ticks 0, every, 2*every, ...
    for call in nv.SLOW_CALLS:
        first = [REC["ticks"][0]["devices"][i][call.key] for i in range(n)]
        if not any(e.get("error") == NOT_SUPPORTED for e in first):
            assert fake.calls[call.key] == asked * n, call.key
    assert fake.calls[nv.POWER.key] == ticks * n
    with pytest.raises(ValueError, match="slow_every"):
        NvmlSensor(FakePynvml(REC), slow_every=0)
    sensor.close()


def test_energy_counter_read_every_few_ticks_keeps_the_counters_total() -> None:
    every = 4
    fake = FakePynvml(REC)
    sensor = NvmlSensor(fake, slow_every=every, energy_every=every)
    accountant = HeatAccountant(estimate=EstimateModel(10.0, 65.0))
    ticks = len(REC["ticks"])
    booked = 0.0
    last_read = 0
    for k in range(ticks):
        readings = sensor.read()
        g = readings[0]
        if k % every == 0:
            assert g.energy_mj is not None
            last_read = k
        else:
            assert g.energy_mj is None
        snap = Snapshot(mono_s=fake.t_s, wall_ts=1e9 + fake.t_s, host=HostReading(), gpus=readings)
        tick = accountant.update(snap)
        booked += tick.component("gpu0").energy_j
        if k + 1 < ticks:
            fake.advance()
    energy = [t["devices"][0][nv.ENERGY.key]["value"] for t in REC["ticks"]]
    assert booked == pytest.approx((energy[last_read] - energy[0]) / 1000.0)
    assert fake.calls[nv.ENERGY.key] == -(-ticks // every) * len(REC["devices"])
    sensor.close()


def test_static_fields_are_read_once_and_not_supported_ones_once() -> None:
    fake = FakePynvml(REC)
    sensor = NvmlSensor(fake)
    n = len(REC["devices"])
    for _ in range(len(REC["ticks"]) - 1):
        sensor.read()
        fake.advance()
    sensor.read()
    ticks = len(REC["ticks"])
    for call in nv.STATIC_CALLS:
        assert fake.calls[call.key] == n, call.key
    for call in nv.TICK_CALLS:
        entries = [t["devices"][i][call.key] for t in REC["ticks"] for i in range(n)]
        first = [REC["ticks"][0]["devices"][i][call.key] for i in range(n)]
        refused_at_start = sum(e.get("error") == NOT_SUPPORTED for e in first)
        if refused_at_start:
            # Asked on the first tick only, for each card that refused it.
            assert fake.calls[call.key] == ticks * n - refused_at_start * (ticks - 1), call.key
        elif all("value" in e for e in entries):
            assert fake.calls[call.key] == ticks * n, call.key
    # Nothing outside the table that the bench records.
    allowed = {c.key for c in (*nv.STATIC_CALLS, *nv.TICK_CALLS)} | {
        "nvmlInit",
        "nvmlDeviceGetCount",
        "nvmlDeviceGetHandleByIndex",
        "nvmlSystemGetDriverVersion",
    }
    assert set(fake.calls) <= allowed
    sensor.close()


def test_accountant_integrates_the_recorded_counter() -> None:
    acc = HeatAccountant(estimate=EstimateModel(10.0, 65.0))
    total = 0.0
    for _fake, sensor, t in replay(REC):
        tick = acc.update(
            Snapshot(mono_s=t, wall_ts=1e9 + t, host=HostReading(), gpus=sensor.read())
        )
        total += tick.energy_j
        if t > 0:
            for i in range(len(REC["devices"])):
                c = tick.component(f"gpu{i}")
                assert c is not None
                assert c.provenance is Provenance.ENERGY_COUNTER
    want = 0.0
    for i in range(len(REC["devices"])):
        energies = [t["devices"][i][nv.ENERGY.key]["value"] for t in REC["ticks"]]
        want += (energies[-1] - energies[0]) / 1000.0
    assert total == pytest.approx(want)


def test_counter_and_power_readings_agree_in_the_recording() -> None:
    """The recording is self-consistent: mJ and mW, not J and W (off by a thousand)."""
    for i in range(len(REC["devices"])):
        ticks = REC["ticks"]
        counter_j = (
            ticks[-1]["devices"][i][nv.ENERGY.key]["value"]
            - ticks[0]["devices"][i][nv.ENERGY.key]["value"]
        ) / 1000.0
        power_j = sum(
            (a["devices"][i][nv.POWER.key]["value"] + b["devices"][i][nv.POWER.key]["value"])
            / 2000.0
            * (b["t_s"] - a["t_s"])
            for a, b in itertools.pairwise(ticks)
        )
        assert 0.5 < counter_j / power_j < 2.0


def two_gpus() -> dict[str, Any]:
    """The recording with a second card: the first one's answers, its power and energy halved.

    (Halved, not doubled: double a loaded card's power and it is beyond its own limit.)
    """
    rec = copy.deepcopy(REC)
    dev = copy.deepcopy(rec["devices"][0])
    dev["index"] = 1
    dev["static"][nv.UUID.key] = {"value": "GPU-second-card"}
    rec["devices"].append(dev)
    for t in rec["ticks"]:
        d = copy.deepcopy(t["devices"][0])
        for call in (nv.POWER, nv.ENERGY):
            if "value" in d[call.key]:
                d[call.key]["value"] //= 2
        t["devices"].append(d)
    return rec


def test_multi_gpu_recording() -> None:
    rec = two_gpus()
    acc = HeatAccountant(estimate=EstimateModel(10.0, 65.0))
    last = None
    for _fake, sensor, t in replay(rec):
        readings = sensor.read()
        assert [g.index for g in readings] == [0, 1]
        assert readings[1].uuid == "GPU-second-card"
        if readings[0].power_w is not None:
            assert readings[1].power_w == pytest.approx(readings[0].power_w / 2, rel=1e-3)
        last = acc.update(Snapshot(mono_s=t, wall_ts=t, host=HostReading(), gpus=readings))
        assert sensor.describe()[1].startswith("GPU 1: ")
    assert last is not None
    g0, g1 = last.component("gpu0"), last.component("gpu1")
    assert g0 is not None
    assert g1 is not None
    assert g0.power_w is not None
    assert g1.power_w == pytest.approx(g0.power_w / 2, rel=1e-3)
    assert g1.provenance is g0.provenance is Provenance.ENERGY_COUNTER


def test_transient_errors_are_none_that_tick_and_asked_again() -> None:
    rec = copy.deepcopy(REC)
    rec["ticks"][1]["devices"][0][nv.TEMP.key] = {"error": "NVMLError_NoPermission"}
    rec["ticks"][1]["devices"][0][nv.POWER.key] = {"error": "NVMLError_Unknown"}
    rec["ticks"][2]["devices"][0][nv.TEMP.key] = {"error": "NVMLError_GpuIsLost"}
    got = []
    for fake, sensor, _t in replay(rec):
        got.append(sensor.read()[0])
        last_fake = fake
    assert got[1].temp_c is None
    assert got[1].power_w is None
    assert got[2].temp_c is None
    assert got[3].temp_c == expected(nv.TEMP, rec["ticks"][3]["devices"][0][nv.TEMP.key])[0]
    assert last_fake.calls[nv.TEMP.key] == len(rec["ticks"])  # never given up on


def test_a_function_missing_from_old_bindings_is_none() -> None:
    rec = copy.deepcopy(REC)
    for t in rec["ticks"]:
        for d in t["devices"]:
            del d[nv.ENERGY.key]  # as bindings from before the counter existed
    for _fake, sensor, _t in replay(rec):
        assert all(g.energy_mj is None for g in sensor.read())


def test_init_failure_raises_nvml_unavailable() -> None:
    fake = FakePynvml(REC, init_error="NVMLError_DriverNotLoaded")
    with pytest.raises(NvmlUnavailable, match="DriverNotLoaded"):
        NvmlSensor(fake)


def test_no_gpu_raises_nvml_unavailable_and_shuts_nvml_down() -> None:
    rec = copy.deepcopy(REC)
    rec["devices"] = []
    for t in rec["ticks"]:
        t["devices"] = []
    fake = FakePynvml(rec)
    with pytest.raises(NvmlUnavailable, match="no GPU"):
        NvmlSensor(fake)
    assert fake.init_count == 0


def test_close_shuts_down_once() -> None:
    fake = FakePynvml(REC)
    sensor = NvmlSensor(fake)
    assert fake.init_count == 1
    sensor.close()
    sensor.close()
    assert fake.calls["nvmlShutdown"] == 1
    assert fake.init_count == 0


def test_describe_and_driver_version() -> None:
    fake = FakePynvml(REC)
    sensor = NvmlSensor(fake)
    try:
        names = [d["static"][nv.NAME.key].get("value") for d in REC["devices"]]
        assert sensor.describe() == [f"GPU {i}: {n} (NVML)" for i, n in enumerate(names)]
        assert sensor.driver_version == REC["driver_version"].get("value")
    finally:
        sensor.close()


def test_suite_reads_gpus_into_the_snapshot() -> None:
    fake = FakePynvml(REC)
    clock = iter([100.0, 101.0])
    suite = SensorSuite(
        host=HostSensor(),
        nvml=NvmlSensor(fake),
        rapl=None,
        mono=lambda: next(clock),
        wall=lambda: 1e9,
    )
    try:
        s = suite.read()
        assert s.mono_s == 100.0
        assert s.wall_ts == 1e9
        assert len(s.gpus) == len(REC["devices"])
        assert s.rapl == ()
        assert suite.describe()[0].startswith("GPU 0: ")
    finally:
        suite.close()
    assert fake.init_count == 0


def test_default_sensors_on_this_machine(caplog: pytest.LogCaptureFixture) -> None:
    import pynvml

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        has_gpu = False
    else:
        has_gpu = pynvml.nvmlDeviceGetCount() > 0
        pynvml.nvmlShutdown()
    caplog.set_level(logging.INFO, logger="heatshare.sensors")
    suite = default_sensors()
    try:
        assert (suite.nvml is not None) == has_gpu
        if not has_gpu:
            # A CPU-only heater is a normal state: said at INFO, not as a warning.
            msgs = [r for r in caplog.records if "CPU-only" in r.getMessage()]
            assert msgs
            assert all(r.levelno == logging.INFO for r in msgs)
            assert "GPU: none (CPU-only heater)" in suite.describe()
        snap = suite.read()
        assert len(snap.gpus) == (len(suite.nvml.devices) if suite.nvml else 0)
    finally:
        suite.close()


# -- the bench script, run against the fake ---------------------------------------------------


class _FakeTime:
    """Stands in for the ``time`` module inside the bench script: sleeping is instant."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def time(self) -> float:
        return 1e9 + self.now


def load_bench(monkeypatch: pytest.MonkeyPatch, fake: FakePynvml) -> ModuleType:
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    spec = importlib.util.spec_from_file_location("nvml_check", REPO / "bench" / "nvml_check.py")
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "time", _FakeTime())
    return mod


@pytest.mark.parametrize("rec", [REC, two_gpus()], ids=["recording", "two-gpus"])
def test_bench_records_what_the_fake_replays(
    rec: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake = FakePynvml(rec, auto_advance=nv.POWER.key)
    bench = load_bench(monkeypatch, fake)
    out = tmp_path / "rec.json"
    n = len(rec["ticks"])
    rc = bench.main(["--ticks", str(n), "--record", str(out)])
    printed = capsys.readouterr().out
    result = json.loads(printed.strip().splitlines()[-1])
    assert rc == 0, result
    assert result["ok"] is True
    assert result["gpus"] == len(rec["devices"])
    for name in ("energy_counter_monotonic", "power_within_limits", "temps_plausible"):
        assert result["checks"][name]["ok"] is True, name
    assert result["checks"]["gpu0_counter_matches_accountant"]["ok"] is True
    # Round trip: what the bench wrote is what the fake replayed.
    written = json.loads(out.read_text())
    assert written["format"] == rec["format"]
    assert written["devices"] == rec["devices"]
    assert [t["devices"] for t in written["ticks"]] == [t["devices"] for t in rec["ticks"]]
    assert [t["t_s"] for t in written["ticks"]] == [float(k) for k in range(n)]
    assert fake.init_count == 0


def test_bench_check_fails_on_a_counter_going_backwards(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rec = copy.deepcopy(REC)
    e = rec["ticks"][2]["devices"][0][nv.ENERGY.key]
    e["value"] = rec["ticks"][0]["devices"][0][nv.ENERGY.key]["value"] - 1
    bench = load_bench(monkeypatch, FakePynvml(rec, auto_advance=nv.POWER.key))
    rc = bench.main(["--ticks", str(len(rec["ticks"]))])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 1
    assert result["checks"]["energy_counter_monotonic"]["ok"] is False


def test_bench_without_nvml_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = load_bench(monkeypatch, FakePynvml(REC, init_error="NVMLError_LibraryNotFound"))
    assert bench.main(["--ticks", "2"]) == 2
    assert json.loads(capsys.readouterr().out.strip())["ok"] is False
