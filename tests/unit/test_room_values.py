"""Reading a temperature out of what a thermometer, Home Assistant or MQTT says: never made up."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from heatshare.sensors.room import (
    OUTDOOR_RANGE_C,
    ROOM_RANGE_C,
    ReadingError,
    device_offline,
    ha_entities,
    ha_temperature,
    ha_time,
    parse_payload,
    payload_time,
    to_celsius,
)

T = "zigbee2mqtt/Study"


@pytest.mark.parametrize(
    ("value", "unit", "celsius"),
    [
        ("21.34", "°C", 21.34),
        (21, "°C", 21.0),
        ("70.7", "°F", 21.5),
        ("-4", "°F", -20.0),
        ("294.65", "K", 21.5),
        (" 19.5 ", None, 19.5),
        ("1e1", "°C", 10.0),
    ],
)
def test_to_celsius(value: object, unit: str | None, celsius: float) -> None:
    assert to_celsius(value, unit, "x", ROOM_RANGE_C) == pytest.approx(celsius, abs=0.005)


@pytest.mark.parametrize(
    ("value", "unit", "error"),
    [
        ("warm", "°C", "x reads 'warm', not a temperature."),
        ("", "°C", "x reads '', not a temperature."),
        ("nan", "°C", "x reads 'nan', not a temperature."),
        ("inf", "°C", "x reads 'inf', not a temperature."),
        (float("nan"), "°C", "x reads nan, not a temperature."),
        (True, "°C", "x reads True, not a temperature."),
        (None, "°C", "x reads 'None', not a temperature."),
        ("1_000", "°C", "x reads '1_000', not a temperature."),
        ("21", "%", "x is measured in %, not in °C or °F."),
        ("85", "°C", "x reads 85.0 °C, which is not a plausible temperature here"),
        ("-31", "°C", "x reads -31.0 °C, which is not a plausible"),
    ],
)
def test_not_a_temperature(value: object, unit: str, error: str) -> None:
    with pytest.raises(ReadingError) as raised:
        to_celsius(value, unit, "x", ROOM_RANGE_C)
    assert str(raised.value).startswith(error)


def test_outdoor_range_is_wider() -> None:
    assert to_celsius("-35", "°C", "x", OUTDOOR_RANGE_C) == -35.0


@pytest.mark.parametrize(
    ("payload", "field", "celsius"),
    [
        (b'{"temperature": 21.3, "humidity": 48.5, "linkquality": 87}', "temperature", 21.3),
        (b'{"temperature": "21.3"}', "temperature", 21.3),
        (b"21.3", "temperature", 21.3),  # a bare number, though a field is set
        (b"21.3\n", None, 21.3),
        (
            b'{"DS18B20": {"Id": "3C01", "Temperature": 19.8}, "TempUnit": "C"}',
            "DS18B20.Temperature",
            19.8,
        ),
        (b'{"a.b": 20.0}', "a.b", 20.0),  # a key with a dot is taken whole first
    ],
)
def test_payloads(payload: bytes, field: str | None, celsius: float) -> None:
    assert parse_payload(payload, field, T, ROOM_RANGE_C) == celsius


@pytest.mark.parametrize(
    ("payload", "field", "error"),
    [
        (b'{"humidity": 48.5}', "temperature", f"The message on {T} has no 'temperature' field."),
        (b'{"temperature": null}', "temperature", f"The message on {T} has no 'temperature'"),
        (b'{"temperature": true}', "temperature", f"The thermometer on {T} reads True"),
        (b'{"temperature": [21]}', "temperature", f"The thermometer on {T} reads '[21]'"),
        (b"warm", "temperature", f"The message on {T} is 'warm', not JSON."),
        (b"[21.3]", "temperature", f"The message on {T} is '[21.3]', not a JSON object."),
        (
            b'{"temperature": 21}',
            None,
            f"The message on {T} is '{{\"temperature\": 21}}', not a number.",
        ),
        (b"\xff\xfe", None, f"The message on {T} is not text."),
        (b"", None, f"The message on {T} is '', not a number."),
        (b"Infinity", "temperature", f"The thermometer on {T} reads inf"),
        (b"1" * 70000, None, f"The message on {T} is too long"),
    ],
)
def test_bad_payloads(payload: bytes, field: str | None, error: str) -> None:
    with pytest.raises(ReadingError) as raised:
        parse_payload(payload, field, T, ROOM_RANGE_C)
    assert str(raised.value).startswith(error)


def test_payload_time_from_last_seen() -> None:
    now = 1_800_000_000.0
    iso = datetime.fromtimestamp(now - 600, UTC).isoformat()
    assert (
        payload_time(json.dumps({"temperature": 20, "last_seen": iso}).encode(), now) == now - 600
    )
    ms = (now - 60) * 1000
    assert payload_time(json.dumps({"last_seen": ms}).encode(), now) == pytest.approx(now - 60)
    assert payload_time(json.dumps({"last_seen": (now + 60) * 1000}).encode(), now) == now
    assert payload_time(b'{"last_seen": "2026-11-27T08:00:00"}', now) == now  # no offset
    assert payload_time(b'{"last_seen": true}', now) == now
    assert payload_time(b"21.3", now) == now
    assert payload_time(b"\xff", now) == now


def _state(entity_id: str, state: str, **attrs: object) -> dict[str, object]:
    return {"entity_id": entity_id, "state": state, "attributes": attrs}


def test_ha_temperature() -> None:
    assert (
        ha_temperature(_state("sensor.a", "20.5", unit_of_measurement="°C"), ROOM_RANGE_C) == 20.5
    )
    weather = _state("weather.home", "rainy", temperature=44.6, temperature_unit="°F")
    assert ha_temperature(weather, OUTDOOR_RANGE_C) == 7.0
    for state, error in (
        (_state("sensor.a", "unavailable"), "Home Assistant reports sensor.a as unavailable"),
        (_state("sensor.a", "unknown"), "Home Assistant reports sensor.a as unknown"),
        (_state("sensor.a", "20"), "sensor.a has no unit; pick a temperature sensor"),
        (_state("weather.home", "sunny"), "The weather entity weather.home gives no temperature."),
    ):
        with pytest.raises(ReadingError, match=error):
            ha_temperature(state, ROOM_RANGE_C)


def test_ha_time() -> None:
    received = 1_800_000_000.0
    reported = "2027-01-15T07:30:00.000000+00:00"
    at = datetime.fromisoformat(reported).timestamp()
    assert at < received
    state = {"last_reported": reported, "last_updated": "2027-01-15T07:00:00+00:00"}
    assert ha_time(state, received) == at
    assert ha_time({"last_updated": reported}, received) == at  # before Home Assistant 2024.3
    assert ha_time({"last_reported": "2099-01-01T00:00:00+00:00"}, received) == received
    assert ha_time({"last_reported": "yesterday"}, received) == received
    assert ha_time({}, received) == received


def test_ha_entities_are_thermometers_only() -> None:
    states = [
        _state(
            "sensor.b",
            "20",
            device_class="temperature",
            unit_of_measurement="°C",
            friendly_name="bedroom",
        ),
        _state("sensor.a", "68", unit_of_measurement="°F", friendly_name="Attic"),
        _state("sensor.h", "40", device_class="humidity", unit_of_measurement="%"),
        _state("sensor.t", "2026-11-27T08:00:00+00:00", device_class="timestamp"),
        _state("binary_sensor.w", "off", device_class="window"),
        _state("weather.home", "sunny", temperature=5, temperature_unit="°C"),
        _state("weather.broken", "unavailable"),
        {"entity_id": "sensor.odd", "state": "1"},
        "not even an object",
    ]
    got = ha_entities([s for s in states if isinstance(s, dict)])
    assert [e.entity_id for e in got] == ["sensor.a", "sensor.b", "weather.home"]
    assert got[1].name == "bedroom"


def test_device_offline() -> None:
    assert device_offline(b'{"state":"offline"}')
    assert device_offline(b"offline")
    assert not device_offline(b'{"state":"online"}')
    assert not device_offline(b"online")
    assert not device_offline(b"[1]")
