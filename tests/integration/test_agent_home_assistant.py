"""The real agent and a real mosquitto: the room read from a Zigbee2MQTT topic, the heater on
Home Assistant's discovery topic, a setpoint and a mode sent as Home Assistant sends them taking
effect in the agent, and the last will when the agent is killed."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_process import AgentProcess, spawn_agent
from heatshare.protocol.heating import HeatingSettings, HeatMode, MqttSource, RoomSourceKind
from mosquitto_broker import Mosquitto, Watcher, require_mosquitto, wait_until

TOPIC = "zigbee2mqtt/Study thermometer"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto(require_mosquitto(), tmp_path / "broker")
    b.workdir.mkdir()
    b.start()
    yield b
    b.stop()


@pytest.fixture
def ha(broker: Mosquitto) -> Iterator[Watcher]:
    w = Watcher(broker.port, ("homeassistant/#", "heatshare/#"))
    yield w
    w.close()


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[AgentProcess]:
    a = spawn_agent(tmp_path / "profile")
    yield a
    a.kill()


def test_home_assistant_sees_the_heater_and_sets_it(
    broker: Mosquitto, ha: Watcher, agent: AgentProcess
) -> None:
    ha.publish(
        TOPIC, json.dumps({"temperature": 19.2, "humidity": 51, "linkquality": 90}), retain=True
    )
    api = agent.client()
    api.put_heating_settings(
        HeatingSettings(
            mode=HeatMode.HEAT_FIRST,
            room_source=RoomSourceKind.MQTT,
            mqtt=MqttSource(host="127.0.0.1", port=broker.port, topic=TOPIC),
        )
    )
    config_msg = _climate_config(ha)
    config = json.loads(config_msg.payload)
    base = config["mode_state_topic"].removesuffix("/mode")
    assert config["modes"] == ["off", "heat", "auto"]
    assert ha.wait_for(f"{base}/availability", lambda m: m.text == "online", timeout=20)
    assert ha.wait_for(f"{base}/current_temperature", lambda m: m.text == "19.20", timeout=20)
    assert ha.wait_for(f"{base}/mode", lambda m: m.text == "heat", timeout=20)

    status = api.heating()
    assert (status.room_c, status.home_assistant) == (19.2, "connected")

    ha.publish(f"{base}/target_temperature/set", "22.5")  # as Home Assistant sends it
    ha.wait_for(f"{base}/target_temperature", lambda m: m.text == "22.5", timeout=20)
    status = api.heating()
    assert (status.setpoint_c, status.setpoint_source) == (22.5, "override")

    ha.publish(f"{base}/mode/set", "auto")
    ha.wait_for(f"{base}/mode", lambda m: m.text == "auto", timeout=20)
    assert api.heating().mode is HeatMode.EARN_FIRST

    assert agent.log_problems() == []
    ha.clear()
    agent.proc.send_signal(signal.SIGKILL)  # no goodbye: the broker's last will speaks
    agent.proc.wait(10)
    assert ha.wait_for(f"{base}/availability", timeout=20).text == "offline"


def _climate_config(ha: Watcher):  # type: ignore[no-untyped-def]
    def found() -> object:
        for m in list(ha.messages):
            if m.topic.startswith("homeassistant/climate/") and m.payload:
                return m
        return None

    return wait_until(found, timeout=30, what="the climate entity's discovery config")
