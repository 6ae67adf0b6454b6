"""Smart plug answers as readings: addresses, units, what a plug did not say, and each refusal."""

from __future__ import annotations

import pytest

from heatshare.domain.heat import PlugReading
from heatshare.sensors.plugs import (
    MAX_PLAUSIBLE_W,
    PlugError,
    base_url,
    shelly_info,
    shelly_reading,
    tasmota_reading,
)

BASE = "http://192.168.1.50"


@pytest.mark.parametrize(
    ("typed", "url"),
    [
        ("192.168.1.50", "http://192.168.1.50"),
        ("  http://Shelly-Plug.local:8080/ ", "http://shelly-plug.local:8080"),
        ("[fe80::1]:80", "http://[fe80::1]:80"),
        ("tasmota-8A1B2C-2860", "http://tasmota-8a1b2c-2860"),
    ],
)
def test_addresses_as_typed(typed: str, url: str) -> None:
    assert base_url(typed) == url


@pytest.mark.parametrize("typed", ["", "   ", "ftp://plug", "plug/cm?cmnd=Status", "http://:80"])
def test_addresses_refused_with_a_sentence(typed: str) -> None:
    with pytest.raises(PlugError) as err:
        base_url(typed)
    assert str(err.value).endswith(".")


def test_shelly_units_wh_to_joules() -> None:
    body = {"id": 0, "output": True, "apower": 12.5, "aenergy": {"total": 2.0}, "voltage": 230.1}
    assert shelly_reading(body, BASE) == PlugReading(
        power_w=12.5, energy_total_j=7200.0, voltage_v=230.1
    )


@pytest.mark.parametrize(
    ("apower", "power_w"),
    [
        (float("nan"), None),
        (True, None),  # JSON true is no number
        ("87.4", None),  # nor is text
        (-0.4, 0.0),  # noise around zero
        (-250.0, None),  # a meter wired the other way: not this machine's draw
        (MAX_PLAUSIBLE_W + 1.0, None),
        (0, 0.0),
    ],
)
def test_shelly_power_that_is_no_reading_is_none(apower: object, power_w: float | None) -> None:
    body = {"id": 0, "output": True, "apower": apower, "aenergy": {"total": 1.0}}
    reading = shelly_reading(body, BASE)
    assert reading.power_w == power_w
    assert reading.energy_total_j == 3600.0
    assert reading.error is None


def test_shelly_relay_without_a_meter() -> None:
    plus_1 = {"id": 0, "source": "init", "output": True, "temperature": {"tC": 40.1, "tF": 104.2}}
    assert shelly_reading(plus_1, BASE).error == (
        f"The Shelly at {BASE} does not measure power (a relay without a meter)."
    )


def test_shelly_with_neither_figure() -> None:
    body = {"id": 0, "output": True, "apower": None, "aenergy": {"total": -3}}
    assert shelly_reading(body, BASE) == PlugReading(
        error=f"The plug at {BASE} gave neither a power nor an energy reading."
    )


def test_shelly_answer_that_is_no_object() -> None:
    assert shelly_reading([1, 2], BASE).error == (
        f"The Shelly at {BASE} gave an answer it never gives."
    )


def test_shelly_info_only_from_the_second_generation_on() -> None:
    assert shelly_info({"type": "SHPLG-S", "mac": "C45BBE6E2F1A"}) is None  # Gen1's /shelly
    assert shelly_info({"id": "x", "gen": 1}) is None
    assert shelly_info(None) is None
    info = shelly_info({"id": "shellyplugsg3-1", "gen": 3, "model": "S3PL-00112EU", "name": " "})
    assert info is not None
    assert info.name is None
    assert info.label == "Shelly S3PL-00112EU (S3PL-00112EU)"


def test_tasmota_units_kwh_to_joules() -> None:
    body = {"StatusSNS": {"ENERGY": {"Total": 0.5, "Power": 100, "Today": 0.1}}}
    assert tasmota_reading(body, BASE) == PlugReading(power_w=100.0, energy_total_j=1_800_000.0)


def test_tasmota_answer_without_sensors() -> None:
    assert tasmota_reading({"WARNING": "Enter command cmnd="}, BASE).error == (
        f"The Tasmota device at {BASE} gave no sensor readings."
    )
