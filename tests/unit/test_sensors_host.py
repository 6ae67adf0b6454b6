"""The psutil host sensor: this machine's real readings, and the CPU temperature's source."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import psutil
import pytest

from heatshare.sensors.host import HostSensor, pick_cpu_temp


class shwtemp(NamedTuple):  # noqa: N801  (psutil's name for the record it returns)
    """psutil's record of one temperature sensor (its own type is private)."""

    label: str
    current: float | None
    high: float | None
    critical: float | None


class scpufreq(NamedTuple):  # noqa: N801  (psutil's name)
    current: float
    min: float
    max: float


def t(label: str, current: float | None) -> shwtemp:
    return shwtemp(label, current, None, None)


def test_reads_this_machine() -> None:
    sensor = HostSensor()
    r = sensor.read()
    n = psutil.cpu_count(logical=True)
    assert r.logical_cpus == n
    assert len(r.per_core_pct) == n
    assert all(0.0 <= p <= 100.0 for p in r.per_core_pct)
    assert r.cpu_pct is not None
    assert r.cpu_pct == pytest.approx(sum(r.per_core_pct) / n)
    assert r.mem_total_bytes == psutil.virtual_memory().total
    assert r.mem_used_bytes is not None
    assert 0 < r.mem_used_bytes < r.mem_total_bytes
    assert r.mem_pct is not None
    assert 0.0 < r.mem_pct < 100.0
    # What the OS offers here, or None: never a guess.
    freq = psutil.cpu_freq()
    if freq is None or not freq.current:
        assert r.cpu_freq_mhz is None
    else:
        assert r.cpu_freq_mhz is not None
        assert r.cpu_freq_mhz > 0
    temps = psutil.sensors_temperatures()
    if pick_cpu_temp(temps) is None:
        assert r.cpu_temp_c is None
        assert "CPU temperature: not reported" in sensor.describe()
    else:
        assert r.cpu_temp_c is not None
        assert -40.0 <= r.cpu_temp_c <= 150.0


def test_cpu_percent_is_asked_once_per_tick(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []

    def cpu_percent(**kw: Any) -> list[float]:
        calls.append(kw)
        return [10.0, 30.0, 50.0, 70.0]

    monkeypatch.setattr(psutil, "cpu_percent", cpu_percent)
    sensor = HostSensor()
    assert len(calls) == 1  # primed once: psutil measures since the previous call
    r = sensor.read()
    assert len(calls) == 2
    assert all(kw == {"percpu": True} for kw in calls)
    assert r.cpu_pct == pytest.approx(40.0)
    assert r.per_core_pct == (10.0, 30.0, 50.0, 70.0)


def test_frequency_is_read_every_period_and_carried_between(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [0.0]
    freqs = iter([1800.0, 2400.0, 3000.0])
    reads: list[float] = []

    def cpu_freq() -> Any:
        reads.append(now[0])
        return scpufreq(next(freqs), 800.0, 4000.0)

    monkeypatch.setattr(psutil, "cpu_freq", cpu_freq)
    sensor = HostSensor(freq_period_s=10.0, mono=lambda: now[0])
    got = []
    for second in range(25):
        now[0] = float(second)
        got.append(sensor.read().cpu_freq_mhz)
    assert reads == [0.0, 10.0, 20.0]
    assert got[:10] == [1800.0] * 10
    assert got[10:20] == [2400.0] * 10
    assert got[20:] == [3000.0] * 5


@pytest.mark.parametrize(
    "answer",
    [
        lambda: None,  # psutil: not known on this platform
        lambda: scpufreq(0.0, 0.0, 0.0),  # some VMs: 0 means "not known"
    ],
)
def test_unknown_frequency_is_none(
    monkeypatch: pytest.MonkeyPatch, answer: Callable[[], Any]
) -> None:
    monkeypatch.setattr(psutil, "cpu_freq", answer)
    assert HostSensor().read().cpu_freq_mhz is None


def test_frequency_that_raises_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> Any:
        raise FileNotFoundError("/sys/devices/system/cpu/cpufreq")

    monkeypatch.setattr(psutil, "cpu_freq", broken)
    assert HostSensor().read().cpu_freq_mhz is None


# -- which temperature is the CPU's ----------------------------------------------------------

INTEL = {
    "acpitz": [t("", 27.8)],
    "coretemp": [t("Core 0", 51.0), t("Package id 0", 55.0), t("Core 1", 49.0)],
    "nvme": [t("Composite", 38.9)],
}
AMD = {"k10temp": [t("Tctl", 72.5), t("Tdie", 45.5), t("Tccd1", 44.0)], "acpitz": [t("", 16.8)]}


@pytest.mark.parametrize(
    ("temps", "want"),
    [
        (INTEL, ("coretemp Package id 0", 55.0)),
        (AMD, ("k10temp Tdie", 45.5)),  # Tctl carries a +27 °C offset on some Threadrippers
        ({"k10temp": [t("Tctl", 61.25), t("Tccd1", 58.0)]}, ("k10temp Tctl", 61.25)),
        ({"zenpower": [t("Tdie", 50.0)], "acpitz": [t("", 30.0)]}, ("zenpower Tdie", 50.0)),
        ({"cpu_thermal": [t("", 48.7)], "acpitz": [t("", 30.0)]}, ("cpu_thermal", 48.7)),
        ({"acpitz": [t("", 30.0), t("", 45.0)], "nvme": [t("", 40.0)]}, ("acpitz", 30.0)),
        ({"nvme": [t("Composite", 38.9)], "amdgpu": [t("edge", 40.0)]}, None),
        ({}, None),
        # Placeholders are not temperatures: fall through to the next source.
        (
            {"coretemp": [t("Package id 0", 0.0 - 273.15)], "acpitz": [t("", 31.0)]},
            ("acpitz", 31.0),
        ),
        ({"k10temp": [t("Tdie", None)], "acpitz": [t("", 31.0)]}, ("acpitz", 31.0)),
        # A coretemp without a package sensor is not the CPU package: the next source.
        ({"coretemp": [t("Core 0", 51.0)], "acpitz": [t("", 31.0)]}, ("acpitz", 31.0)),
    ],
)
def test_pick_cpu_temp(temps: dict[str, list[shwtemp]], want: tuple[str, float] | None) -> None:
    assert pick_cpu_temp(temps) == want


@pytest.mark.parametrize(("temps", "want"), [(INTEL, 55.0), (AMD, 45.5), ({}, None)])
def test_sensor_takes_the_temperature_from_psutil(
    monkeypatch: pytest.MonkeyPatch, temps: dict[str, list[shwtemp]], want: float | None
) -> None:
    monkeypatch.setattr(psutil, "sensors_temperatures", lambda: temps)
    sensor = HostSensor()
    assert sensor.read().cpu_temp_c == want
    picked = pick_cpu_temp(temps)
    line = [ln for ln in sensor.describe() if ln.startswith("CPU temperature")]
    assert line == [f"CPU temperature: {picked[0] if picked else 'not reported'}"]


def test_platform_without_temperatures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(psutil, "sensors_temperatures")  # as on Windows and macOS
    assert HostSensor().read().cpu_temp_c is None


def test_temperature_is_read_every_period_and_looked_for_rarely_when_absent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [0.0]
    answers = iter([{}, INTEL, AMD, INTEL])
    asked: list[float] = []

    def sensors_temperatures() -> Any:
        asked.append(now[0])
        return next(answers)

    monkeypatch.setattr(psutil, "sensors_temperatures", sensors_temperatures)
    sensor = HostSensor(temp_period_s=2.0, no_temp_period_s=60.0, mono=lambda: now[0])
    got = {}
    for second in [0, 1, 59, 60, 61, 62, 63, 64]:
        now[0] = float(second)
        got[second] = sensor.read().cpu_temp_c
    # None at 0 s: the next look is a minute later; then every 2 s, carried between.
    assert asked == [0.0, 60.0, 62.0, 64.0]
    assert got == {0: None, 1: None, 59: None, 60: 55.0, 61: 55.0, 62: 45.5, 63: 45.5, 64: 55.0}
