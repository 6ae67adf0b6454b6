"""The heating routes of the local API: a real service on a real SQLite file, served over HTTP.

The thermostat runs its real loop; the tests step it by hand (``service.heating.step()``)
after a sample, as the heating thread would.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_api_support import Agent, error_of, make_service, start_agent

from heatshare.protocol.client import AgentClient
from heatshare.protocol.heating import (
    HeatingSettings,
    HeatingStatus,
    HeatMode,
    HomeAssistantSource,
    MqttSource,
    RoomProbeResponse,
    RoomSourceKind,
    SafetyLimits,
    SetpointRequest,
)
from heatshare.protocol.local_api import AgentStatus
from heatshare.store import Store


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Agent]:
    a = start_agent(tmp_path)
    yield a
    a.close()


@pytest.fixture
def client(agent: Agent) -> Iterator[AgentClient]:
    c = AgentClient(agent.url, "test-token-0123456789")
    yield c
    c.close()


def stepped(agent: Agent) -> None:
    agent.tick()
    agent.service.heating.step()


def ha_settings(token: str | None = "secret-token") -> HeatingSettings:
    return HeatingSettings(
        room_source=RoomSourceKind.HOME_ASSISTANT,
        home_assistant=HomeAssistantSource(
            url="http://127.0.0.1:9/", token=token, entity_id="sensor.living_room"
        ),
        mqtt=MqttSource(host="127.0.0.1", port=9, topic="zigbee2mqtt/room", password="pw-1"),
    )


def test_the_status_has_no_heating_until_the_loop_ran(agent: Agent, client: AgentClient) -> None:
    agent.tick()
    assert client.status().heating is None
    agent.service.heating.step()
    summary = client.status().heating
    assert summary is not None
    assert summary.mode is HeatMode.EARN_FIRST
    assert summary.reason


def test_heating_status_and_default_settings(agent: Agent, client: AgentClient) -> None:
    stepped(agent)
    status = client.heating()
    assert status.mode is HeatMode.EARN_FIRST
    assert status.room_source is RoomSourceKind.NONE
    assert status.setpoint_c in (20.5, 17.0)  # comfort or eco, by the time of day
    assert status.home_assistant == "off"
    assert client.heating_settings() == HeatingSettings()


def test_a_secret_is_never_given_back_and_kept_when_left_out(
    agent: Agent, client: AgentClient, tmp_path: Path
) -> None:
    saved = client.put_heating_settings(ha_settings())
    assert saved.home_assistant is not None and saved.home_assistant.token is None
    assert saved.mqtt is not None and saved.mqtt.password is None
    got = client.heating_settings()
    assert got == saved
    raw = agent.request("GET", "/v1/heating/settings")
    assert "secret-token" not in raw.text and "pw-1" not in raw.text
    # Sent back as read (secrets None): the stored ones stay.
    client.put_heating_settings(got.model_copy(update={"comfort_c": 21.0}))
    stored = agent.service.heating.settings_stored()
    assert stored.comfort_c == 21.0
    assert stored.home_assistant is not None and stored.home_assistant.token == "secret-token"
    assert stored.mqtt is not None and stored.mqtt.password == "pw-1"
    # A new server never gets the old server's token: without one, the change is refused.
    moved = got.model_copy(
        update={
            "home_assistant": HomeAssistantSource(
                url="http://192.0.2.1:8123", entity_id="sensor.living_room"
            )
        }
    )
    resp = agent.request(
        "PUT",
        "/v1/heating/settings",
        data=moved.model_dump_json(),
        headers={"Content-Type": "application/json"},
    )
    assert resp.status_code == 422
    assert "token" in error_of(resp)
    assert agent.service.heating.settings_stored().home_assistant == stored.home_assistant


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"comfort_c": 45}, "comfort_c"),
        ({"eco_c": 22, "comfort_c": 20}, "eco temperature"),
        ({"room_source": "mqtt"}, "MQTT room source"),
        ({"limits": {"gpu_max_c": 70, "gpu_resume_c": 75}}, "resume below"),
        ({"periods": [{"day": 1, "start_min": 600, "end_min": 500}]}, "end after it starts"),
        ({"mode": "sauna"}, "mode"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_bad_settings_get_a_422_with_sentences(
    agent: Agent, body: dict[str, object], words: str
) -> None:
    resp = agent.request("PUT", "/v1/heating/settings", json=body)
    assert resp.status_code == 422, resp.text
    message = error_of(resp)
    assert message.startswith("The heating settings was not accepted")
    assert words in message
    assert resp.json()["detail"]
    assert agent.service.heating.settings_stored() == HeatingSettings()


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/v1/heating/mode", {"mode": "warm"}, 422),
        ("/v1/heating/mode", {}, 422),
        ("/v1/heating/boost", {"minutes": 300}, 422),
        ("/v1/heating/boost", {"minutes": -1}, 422),
        ("/v1/heating/setpoint", {"setpoint_c": 21, "delta_c": 1}, 422),
        ("/v1/heating/setpoint", {"setpoint_c": 50}, 422),
        ("/v1/heating/setpoint", {}, 422),
        ("/v1/heating/room-probe", {"room_source": "carrier-pigeon"}, 422),
    ],
)
def test_bad_requests_get_sentences(
    agent: Agent, path: str, body: dict[str, object], status: int
) -> None:
    resp = agent.request("POST", path, json=body)
    assert resp.status_code == status, resp.text
    error_of(resp)


def test_a_setpoint_in_the_past_is_refused_with_a_sentence(agent: Agent) -> None:
    stepped(agent)
    resp = agent.request(
        "POST", "/v1/heating/setpoint", json={"setpoint_c": 21, "until": "2020-01-01T00:00:00Z"}
    )
    assert resp.status_code == 422
    assert "future" in error_of(resp)


def test_mode_boost_and_setpoint_take_effect(agent: Agent, client: AgentClient) -> None:
    stepped(agent)
    status = client.set_mode(HeatMode.HEAT_FIRST)
    assert status.mode is HeatMode.HEAT_FIRST
    assert agent.service.heating.settings_stored().mode is HeatMode.HEAT_FIRST
    status = client.setpoint(SetpointRequest(setpoint_c=21.5))
    assert status.setpoint_c == 21.5 and status.setpoint_source == "override"
    status = client.setpoint(SetpointRequest(delta_c=-0.5))
    assert status.setpoint_c == 21.0
    status = client.boost(30)
    assert status.boost_until is not None
    assert client.boost(0).boost_until is None
    assert client.setpoint(SetpointRequest(clear=True)).setpoint_source != "override"
    # A boost with no body is the default hour.
    resp = agent.request("POST", "/v1/heating/boost")
    assert resp.status_code == 200
    assert HeatingStatus.model_validate_json(resp.text).boost_until is not None


def test_mode_override_and_boost_survive_a_restart(tmp_path: Path) -> None:
    first = start_agent(tmp_path)
    c = AgentClient(first.url, "test-token-0123456789")
    try:
        stepped(first)
        c.set_mode(HeatMode.QUIET)
        c.setpoint(SetpointRequest(setpoint_c=22.0, until=None))
        c.boost(45)
        before = c.heating()
    finally:
        c.close()
        first.close()
    second = start_agent(tmp_path)
    c = AgentClient(second.url, "test-token-0123456789")
    try:
        stepped(second)
        after = c.heating()
        assert after.mode is HeatMode.QUIET
        assert after.setpoint_c == 22.0 and after.setpoint_source == "override"
        assert after.boost_until == before.boost_until
    finally:
        c.close()
        second.close()


def test_damaged_stored_settings_fall_back_field_by_field(
    tmp_path: Path, expect_log: Callable[[str], None]
) -> None:
    expect_log(r"Some stored heating settings were not usable")
    first = start_agent(tmp_path)
    c = AgentClient(first.url, "test-token-0123456789")
    try:
        c.put_heating_settings(
            ha_settings().model_copy(
                update={"comfort_c": 21.5, "limits": SafetyLimits(grace_s=30, dwell_s=60)}
            )
        )
    finally:
        c.close()
        first.close()
    db = tmp_path / "history.sqlite3"
    with sqlite3.connect(db) as con:
        (raw,) = con.execute(
            "SELECT value FROM state WHERE key = 'agent.heating.settings'"
        ).fetchone()
        data = json.loads(raw)
        data["eco_c"] = 99  # out of range
        data["limits"]["grace_s"] = "soon"  # one nested field
        data["from_a_newer_version"] = True
        con.execute(
            "UPDATE state SET value = ? WHERE key = 'agent.heating.settings'", (json.dumps(data),)
        )
    second = start_agent(tmp_path)
    try:
        s = second.service.heating.settings_stored()
        assert s.eco_c == HeatingSettings().eco_c
        assert s.comfort_c == 21.5  # the rest is kept
        assert s.limits.grace_s == SafetyLimits().grace_s and s.limits.dwell_s == 60
        assert s.home_assistant is not None and s.home_assistant.token == "secret-token"
        warnings = second.service.status().warnings
        assert any("eco_c" in w and "limits.grace_s" in w for w in warnings), warnings
    finally:
        second.close()


def test_unreadable_stored_settings_start_from_the_defaults(
    tmp_path: Path, expect_log: Callable[[str], None]
) -> None:
    expect_log(r"Some stored heating settings were not usable")
    sensors_agent = start_agent(tmp_path)
    sensors_agent.close()
    store = Store.open(tmp_path / "history.sqlite3", now=0.0)
    store.set_state("agent.heating.settings", "{not json")
    store.close()
    from test_api_support import FakeSensors

    service = make_service(tmp_path / "history.sqlite3", FakeSensors())
    try:
        assert service.heating.settings_stored() == HeatingSettings()
    finally:
        service.stop()


def test_history_records_room_setpoint_and_demand(agent: Agent, client: AgentClient) -> None:
    agent.tick()
    agent.service.heating.step()
    agent.tick(3)
    now = agent.sensors.wall
    h = client.history(["room_c", "setpoint_c", "heat_demand_pct"], now - 60, now + 1)
    room, setpoint, demand = h.series
    assert setpoint.unit == "°C" and demand.unit == "%"
    assert len(setpoint.t) == 3 and all(v in (20.5, 17.0) for v in setpoint.mean)
    assert room.mean == [None, None, None] or not room.t  # no thermometer
    assert len(demand.t) == 3
    names = {s.name for s in client.series().series}
    assert {"setpoint_c", "heat_demand_pct"} <= names


def test_room_probe_of_an_unreachable_server_is_an_answer_not_an_error(
    client: AgentClient,
) -> None:
    from heatshare.protocol.heating import RoomProbeRequest

    answer = client.room_probe(
        RoomProbeRequest(
            room_source=RoomSourceKind.HOME_ASSISTANT,
            home_assistant=HomeAssistantSource(url="http://127.0.0.1:9", token="t"),
        )
    )
    assert isinstance(answer, RoomProbeResponse)
    assert not answer.ok
    assert answer.error and answer.error[:1].isupper()


def test_the_status_summary_follows_the_mode(agent: Agent) -> None:
    stepped(agent)
    agent.request("POST", "/v1/heating/mode", json={"mode": "off"})
    agent.service.heating.step()
    status = AgentStatus.model_validate_json(agent.request("GET", "/v1/status").text)
    assert status.heating is not None
    assert status.heating.mode is HeatMode.OFF
    assert not status.heating.computing


def test_the_dust_reminder_reads_weeks_of_hourly_history(tmp_path: Path) -> None:
    from test_api_support import FakeSensors

    sensors = FakeSensors()
    service = make_service(tmp_path / "history.sqlite3", sensors)
    try:
        assert service.dust_advice() == []  # no sample yet: no GPU to look at
        # Three weeks of history as a running agent writes and rolls it up, the last week
        # 8 °C warmer at the same power and room temperature.
        start = sensors.wall - 21 * 86400.0
        store = service._store
        for k in range(21 * 24 * 6):  # every 10 minutes
            t = start + k * 600.0
            rise = 8.0 if t > start + 14 * 86400.0 else 0.0
            store.write_samples(
                t, {"gpu0.power_w": 300.0, "gpu0.temp_c": 60.0 + rise, "room_c": 20.0}
            )
            if k % 36 == 35:
                store.rollup(t)
        service.tick()
        advice = service.dust_advice()
        assert len(advice) == 1 and "GPU 0" in advice[0], advice
    finally:
        service.stop()
