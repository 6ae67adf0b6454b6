"""The RAPL sensor on a copy of the powercap layout, and on this machine."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from heatshare.domain.readings import RaplReading
from heatshare.sensors.rapl import RaplSensor

MAX_UJ = 262_143_328_850


def zone(root: Path, d: str, name: str, energy: int | None, max_uj: int = MAX_UJ) -> Path:
    z = root / d
    z.mkdir(parents=True)
    (z / "name").write_text(name + "\n")
    (z / "max_energy_range_uj").write_text(f"{max_uj}\n")
    if energy is None:
        # What root-only mode looks like to a user, made so that it also fails for root:
        # a read of energy_uj raises an OSError.
        (z / "energy_uj").mkdir()
    else:
        (z / "energy_uj").write_text(f"{energy}\n")
    return z


@pytest.fixture
def powercap(tmp_path: Path) -> Path:
    root = tmp_path / "powercap"
    zone(root, "intel-rapl:0", "package-0", 1_000_000)
    zone(root, "intel-rapl:0:0", "core", 500_000)  # a sub-zone: inside the package already
    zone(root, "intel-rapl:0:1", "uncore", 100_000)
    zone(root, "intel-rapl:1", "package-1", 7_000_000, max_uj=65_532_610_987)
    zone(root, "intel-rapl:2", "psys", 9_000_000)  # the whole platform, not the CPU package
    (root / "intel-rapl").mkdir()  # the control type folder, not a zone
    return root


def test_reads_top_level_packages_only(powercap: Path) -> None:
    s = RaplSensor(powercap)
    assert s.available
    assert s.read() == (
        RaplReading("package-0", 1_000_000, MAX_UJ),
        RaplReading("package-1", 7_000_000, 65_532_610_987),
    )
    assert s.describe() == ["RAPL: package-0, package-1 (energy counter)"]


def test_reads_new_values_each_tick(powercap: Path) -> None:
    s = RaplSensor(powercap)
    (powercap / "intel-rapl:0" / "energy_uj").write_text("1234567\n")
    assert s.read()[0].energy_uj == 1_234_567


def test_unreadable_counter_is_not_available(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "powercap"
    zone(root, "intel-rapl:0", "package-0", None)
    caplog.set_level(logging.INFO, logger="heatshare.sensors.rapl")
    s = RaplSensor(root)
    assert not s.available
    assert s.read() == ()
    assert s.describe()[0].startswith("RAPL: not readable")
    # The normal case on most machines: said at INFO, not as a warning.
    assert [r.levelno for r in caplog.records] == [logging.INFO]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a mode-000 file anyway")
def test_root_only_counter_is_not_available(tmp_path: Path) -> None:
    root = tmp_path / "powercap"
    z = zone(root, "intel-rapl:0", "package-0", 5)
    (z / "energy_uj").chmod(0)
    assert not RaplSensor(root).available


def test_no_powercap_folder(tmp_path: Path) -> None:
    s = RaplSensor(tmp_path / "absent")
    assert not s.available
    assert s.read() == ()
    assert s.describe() == ["RAPL: no CPU package counters"]


def test_a_read_failing_later_gives_nothing_that_tick(powercap: Path) -> None:
    s = RaplSensor(powercap)
    (powercap / "intel-rapl:1" / "energy_uj").unlink()
    assert s.read() == ()  # not package-0 alone: that would undercount the CPU
    (powercap / "intel-rapl:1" / "energy_uj").write_text("8000000\n")
    assert len(s.read()) == 2


def test_duplicate_names_stay_apart(tmp_path: Path) -> None:
    root = tmp_path / "powercap"
    zone(root, "intel-rapl:0", "package-0", 1)
    zone(root, "intel-rapl:1", "package-0", 2)  # seen on some firmware
    names = [r.name for r in RaplSensor(root).read()]
    assert len(set(names)) == 2


def test_this_machine() -> None:
    root = Path("/sys/class/powercap")
    s = RaplSensor()
    zones = sorted(root.glob("intel-rapl:*")) if root.is_dir() else []
    readable = [z for z in zones if z.name.count(":") == 1 and os.access(z / "energy_uj", os.R_OK)]
    if not readable:
        assert not s.available
        assert s.read() == ()
    else:
        for r in s.read():
            assert 0 <= r.energy_uj <= r.max_energy_range_uj
