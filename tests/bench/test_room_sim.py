"""The room simulator runs whole (a short simulated day) and ends with its JSON line."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bench" / "room_sim.py"
FIGURES = ("rms_c", "max_dev_c", "overshoot_c", "settling_min", "starts_per_hour")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_quick_day_prints_finite_figures_as_its_last_line() -> None:
    proc = run("--days", "1", "--quick")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    lines = proc.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    for key in FIGURES:
        assert isinstance(result[key], int | float), (key, result[key])
        assert math.isfinite(result[key]), key
        assert result[key] >= 0, key
    assert set(result["machines"]) == {"duty", "cap"}
    for figures in result["machines"].values():
        for key in FIGURES:
            assert math.isfinite(figures[key]), key
        # The duty cycle's minimum on and off times allow no more than 6 starts an hour.
        assert figures["starts_per_hour"] <= 6
        assert figures["steady_hours"] > 0
    assert isinstance(result["goal_met"], bool)
    # The human lines come first, one per machine.
    assert any(line.startswith("duty :") for line in lines[:-1])
    assert any(line.startswith("cap  :") for line in lines[:-1])


def test_a_bad_argument_is_refused_with_a_sentence() -> None:
    proc = run("--days", "0")
    assert proc.returncode == 2
    assert "--days and --step-s must be positive" in proc.stderr


def test_price_aware_heating_costs_less_for_the_same_mean_temperature() -> None:
    proc = run("--days", "2", "--quick", "--machine", "duty", "--prices", "agile")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    lines = proc.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    # The plain run's figures are still there and still meet the goal.
    assert result["goal_met"] is True
    prices = result["prices"]
    assert prices["curve"] == "agile" and prices["band_c"] == 1.0
    duty = prices["machines"]["duty"]
    blind, aware = duty["blind"], duty["aware"]
    # The same week, the same heat need: about the same energy, bought when it is cheap.
    assert blind["cost"] > 0 and aware["cost"] > 0
    assert duty["saving"] == round(blind["cost"] - aware["cost"], 3)
    assert duty["saving"] > 0 and duty["saving_pct"] >= 3.0
    assert abs(aware["kwh"] - blind["kwh"]) / blind["kwh"] < 0.05
    # The same comfort on average; the room does go below the setpoint in the dear hours,
    # within the band (and the duty cycle's ripple).
    assert abs(duty["mean_c_diff"]) <= 0.1
    assert aware["below_setpoint_dh"] > blind["below_setpoint_dh"]
    assert aware["max_dev_c"] <= 1.0 + 0.3
    assert aware["starts_per_hour"] <= 6 and blind["starts_per_hour"] <= 6
    assert any(line.startswith("duty  saving: £") for line in lines[:-1])


def test_a_band_out_of_range_is_refused_with_a_sentence() -> None:
    proc = run("--days", "1", "--prices", "agile", "--band", "5")
    assert proc.returncode == 2
    assert "--band must be 0 to 3 °C" in proc.stderr
