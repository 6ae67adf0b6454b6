"""How the dashboard's figures read: units, provenance in words, and "not available"."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from heatshare.domain.readings import Provenance
from heatshare.gui.formatting import (
    NOT_AVAILABLE,
    component_name,
    dashboard_figures,
    format_btu_h,
    format_energy_kwh,
    format_money_minor,
    format_power,
    format_tariff,
    format_temperature,
    heat_source_text,
    provenance_text,
)
from heatshare.protocol.local_api import AgentStatus


def status(**kw: Any) -> AgentStatus:
    base: dict[str, Any] = {
        "protocol_version": 1,
        "agent_version": "0.1.0",
        "hostname": "study-pc",
        "state": "heating",
        "sample_time": datetime(2026, 1, 5, 12, 0, tzinfo=UTC),
    }
    return AgentStatus.model_validate(base | kw)


def test_power_in_watts_and_btu_per_hour() -> None:
    assert format_power(312.4) == "312 W"
    assert format_power(4.25) == "4.2 W"
    assert format_power(1500.0) == "1,500 W"
    assert format_btu_h(312.4) == "1,066 BTU/h"  # 312.4 × 3.412
    assert format_btu_h(0.0) == "0 BTU/h"


def test_missing_figures_read_not_available_never_zero() -> None:
    assert format_power(None) == NOT_AVAILABLE
    assert format_btu_h(None) == NOT_AVAILABLE
    assert format_temperature(None) == NOT_AVAILABLE
    assert format_energy_kwh(None) == NOT_AVAILABLE
    assert format_money_minor(None, "GBP") == NOT_AVAILABLE


def test_a_measured_zero_is_zero() -> None:
    assert format_power(0.0) == "0.0 W"
    assert format_temperature(0.0) == "0 °C"


def test_provenance_in_words() -> None:
    assert provenance_text(Provenance.ESTIMATE) == "Estimated from utilisation"
    assert provenance_text(Provenance.PLUG) == "Measured at the wall plug"
    assert provenance_text(Provenance.ENERGY_COUNTER) == "Measured by energy counters"


def test_temperature_honours_fahrenheit() -> None:
    assert format_temperature(66.6, "C") == "67 °C"
    assert format_temperature(100.0, "F") == "212 °F"


def test_energy_keeps_useful_precision() -> None:
    assert format_energy_kwh(0.0123) == "0.012 kWh"
    assert format_energy_kwh(4.567) == "4.57 kWh"
    assert format_energy_kwh(1234.5) == "1,234.5 kWh"


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (30, "GBP", "£0.30"),
        (123456, "EUR", "€1,234.56"),
        (-5, "USD", "-$0.05"),
        (250, "JPY", "¥250"),
        (1999, "SEK", "19.99 SEK"),
        (1999, "CAD", "CAD 19.99"),
    ],
)
def test_money_from_integer_minor_units(minor: int, currency: str, text: str) -> None:
    assert format_money_minor(minor, currency) == text


def test_tariff_shows_its_precision() -> None:
    assert format_tariff(Decimal("0.245"), "GBP") == "at £0.245 per kWh"
    assert format_tariff(Decimal("0.3"), "EUR") == "at €0.30 per kWh"
    assert format_tariff(Decimal("25"), "JPY") == "at ¥25 per kWh"
    assert format_tariff(None, "GBP") == "tariff not set"


def test_hottest_component_is_named_after_the_card() -> None:
    s = status(gpus=[{"index": 0, "name": "NVIDIA GeForce RTX 3080"}])
    assert component_name(s, "gpu0") == "GPU 0 · NVIDIA GeForce RTX 3080"
    assert component_name(s, "cpu") == "CPU"
    assert component_name(s, None) == ""


def test_dashboard_figures_of_a_gpu_heater() -> None:
    s = status(
        heat_w=312.4,
        heat_provenance="energy_counter",
        heat_today_kwh=2.5,
        cost_today_minor=61,
        currency="GBP",
        hottest_name="gpu0",
        hottest_c=71.2,
        gpus=[{"index": 0, "name": "RTX 3080", "temp_c": 71.2}],
    )
    f = dashboard_figures(s, temperature_unit="C", tariff_per_kwh=Decimal("0.245"))
    assert (f.heat_w, f.heat_btu_h) == ("312 W", "1,066 BTU/h")
    assert f.heat_source == "Measured by energy counters"
    assert f.heat_today == "2.50 kWh"
    assert (f.hottest, f.hottest_name) == ("71 °C", "GPU 0 · RTX 3080")
    assert (f.cost_today, f.tariff) == ("£0.61", "at £0.245 per kWh")


def test_dashboard_figures_of_a_machine_without_sensors() -> None:
    f = dashboard_figures(status(heat_w=None, hottest_c=None, temperatures={"cpu": None}))
    assert f.heat_w == NOT_AVAILABLE
    assert f.heat_btu_h == NOT_AVAILABLE
    assert f.heat_source == ""
    assert f.hottest == NOT_AVAILABLE
    assert f.hottest_name == ""


def test_heat_source_of_a_metered_gpu_beside_an_estimated_cpu() -> None:
    """As the agent reported on an H100 machine without RAPL: mostly measured heat."""
    s = status(
        heat_w=693.0,
        heat_provenance="estimate",
        gpus=[{"index": 0, "name": "H100", "power_w": 680.0, "power_provenance": "energy_counter"}],
        host={"cpu_pct": 5.0, "cpu_power_w": 13.0, "cpu_power_provenance": "estimate"},
    )
    assert heat_source_text(s) == "98 % measured, the rest estimated from utilisation"
    assert dashboard_figures(s).heat_source == heat_source_text(s)


def test_heat_source_when_nothing_is_measured_is_the_estimate() -> None:
    s = status(
        heat_w=12.0,
        heat_provenance="estimate",
        host={"cpu_power_w": 12.0, "cpu_power_provenance": "estimate"},
    )
    assert heat_source_text(s) == "Estimated from utilisation"
