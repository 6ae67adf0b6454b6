"""The heater in Home Assistant over a real mosquitto broker: the discovery configs, the state
topics, commands sent as Home Assistant sends them, bad commands, and the last will."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from heatshare.__about__ import __version__
from heatshare.agent.home_assistant import HaBridge, HaState
from heatshare.protocol.heating import HeatingStatus, HeatMode, MqttSource, RoomSourceKind
from mosquitto_broker import Mosquitto, Watcher, require_mosquitto, wait_until

KEY = "study-pc"
BASE = f"heatshare/{KEY}"
CLIMATE = f"homeassistant/climate/{KEY}/config"
HEAT_OUTPUT = f"homeassistant/sensor/{KEY}/heat_output/config"
HEAT_TODAY = f"homeassistant/sensor/{KEY}/heat_today/config"
STATE = HaState(
    mode=HeatMode.HEAT_FIRST,
    boost=False,
    current_c=20.14,
    target_c=20.5,
    computing=True,
    heat_w=231.4,
    heat_today_kwh=1.2345,
)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto(require_mosquitto(), tmp_path)
    b.start()
    yield b
    b.stop()


@pytest.fixture
def ha(broker: Mosquitto) -> Iterator[Watcher]:
    """A client in Home Assistant's role: it reads the discovery prefix and our topics."""
    w = Watcher(broker.port, ("homeassistant/#", "heatshare/#"))
    yield w
    w.close()


class Heater:
    """The agent's side: records the commands and answers with the state they lead to."""

    def __init__(self, state: HaState = STATE) -> None:
        self.state = state
        self.calls: list[tuple[str, object]] = []
        self.refuse: Exception | None = None
        self.lock = threading.Lock()

    def _do(self, what: str, arg: object, change: Callable[[], HaState]) -> HaState:
        with self.lock:
            self.calls.append((what, arg))
            if self.refuse is not None:
                raise self.refuse
            self.state = change()
            return self.state

    def mode(self, mode: HeatMode) -> HaState:
        return self._do("mode", mode, lambda: replace(self.state, mode=mode))

    def setpoint(self, c: float) -> HaState:
        return self._do("setpoint", c, lambda: replace(self.state, target_c=c))

    def boost(self, minutes: int) -> HaState:
        return self._do("boost", minutes, lambda: replace(self.state, boost=minutes > 0))


@pytest.fixture
def bridges() -> Iterator[list[HaBridge]]:
    started: list[HaBridge] = []
    yield started
    for b in started:
        b.stop()


def _bridge(broker: Mosquitto, heater: Heater, bridges: list[HaBridge], **kw: object) -> HaBridge:
    cfg = MqttSource(host="127.0.0.1", port=broker.port, topic="unused/by/the/bridge")
    bridge = HaBridge(
        cfg,
        node_key=KEY,
        name="Study heater",
        on_mode=heater.mode,
        on_setpoint=heater.setpoint,
        on_boost=heater.boost,
        **kw,  # type: ignore[arg-type]
    )
    bridges.append(bridge)
    bridge.start()
    return bridge


def _config(ha: Watcher, topic: str) -> dict[str, object]:
    msg = ha.wait_for(topic, lambda m: bool(m.payload))
    config = json.loads(msg.payload)
    assert isinstance(config, dict)
    return config


def test_discovery_configs_and_state_appear(
    broker: Mosquitto, ha: Watcher, bridges: list[HaBridge]
) -> None:
    bridge = _bridge(broker, Heater(), bridges)
    bridge.publish(STATE)
    climate = _config(ha, CLIMATE)
    device = {
        "identifiers": [f"heatshare_{KEY}"],
        "name": "Study heater",
        "manufacturer": "Heatshare",
        "model": "Heater-server",
        "sw_version": __version__,
    }
    assert climate == {
        "device": device,
        "origin": {"name": "Heatshare", "sw_version": __version__},
        "availability_topic": f"{BASE}/availability",
        "payload_available": "online",
        "payload_not_available": "offline",
        "qos": 1,
        "name": None,
        "unique_id": f"heatshare_{KEY}_climate",
        "modes": ["off", "heat", "auto"],
        "mode_state_topic": f"{BASE}/mode",
        "mode_command_topic": f"{BASE}/mode/set",
        "preset_modes": ["quiet", "boost"],
        "preset_mode_state_topic": f"{BASE}/preset",
        "preset_mode_command_topic": f"{BASE}/preset/set",
        "current_temperature_topic": f"{BASE}/current_temperature",
        "temperature_state_topic": f"{BASE}/target_temperature",
        "temperature_command_topic": f"{BASE}/target_temperature/set",
        "action_topic": f"{BASE}/action",
        "min_temp": 5.0,
        "max_temp": 30.0,
        "temp_step": 0.5,
        "precision": 0.1,
        "temperature_unit": "C",
        "optimistic": False,
    }
    power = _config(ha, HEAT_OUTPUT)
    energy = _config(ha, HEAT_TODAY)
    assert power["device"] == device and energy["device"] == device  # one device, three entities
    assert (power["device_class"], power["unit_of_measurement"], power["state_class"]) == (
        "power",
        "W",
        "measurement",
    )
    assert (energy["device_class"], energy["unit_of_measurement"], energy["state_class"]) == (
        "energy",
        "kWh",
        "total_increasing",
    )
    assert power["state_topic"] == f"{BASE}/heat_output"
    assert energy["state_topic"] == f"{BASE}/heat_today"
    assert power["availability_topic"] == f"{BASE}/availability"

    expected = {
        "availability": "online",
        "mode": "heat",
        "preset": "none",
        "current_temperature": "20.14",
        "target_temperature": "20.5",
        "action": "heating",
        "heat_output": "231",
        "heat_today": "1.234",
    }
    for leaf, payload in expected.items():
        assert ha.wait_for(f"{BASE}/{leaf}").text == payload, leaf
    wait_until(lambda: bridge.connected and bridge.error is None, what="connected")

    # All retained: Home Assistant starting later reads the same.
    late = Watcher(broker.port, ("homeassistant/#", "heatshare/#"))
    try:
        assert json.loads(late.wait_for(CLIMATE).payload) == climate
        for leaf, payload in expected.items():
            msg = late.wait_for(f"{BASE}/{leaf}")
            assert (msg.text, msg.retain) == (payload, True), leaf
    finally:
        late.close()


def test_state_payloads_for_every_mode() -> None:
    p = HaBridge.state_payloads
    assert p(replace(STATE, mode=HeatMode.EARN_FIRST))["mode"] == "auto"
    quiet = p(replace(STATE, mode=HeatMode.QUIET, computing=False))
    assert (quiet["mode"], quiet["preset"], quiet["action"]) == ("heat", "quiet", "idle")
    off = p(replace(STATE, mode=HeatMode.OFF, computing=False, target_c=None, current_c=None))
    assert (off["mode"], off["action"], off["target_temperature"]) == ("off", "off", "None")
    assert off["current_temperature"] == "None"  # Home Assistant's word for unknown
    boosted = p(replace(STATE, mode=HeatMode.OFF, boost=True))
    assert (boosted["preset"], boosted["action"]) == ("boost", "heating")


def test_from_status() -> None:
    status = HeatingStatus(
        mode=HeatMode.QUIET, room_source=RoomSourceKind.MQTT, room_c=19.5, setpoint_c=21.0
    )
    state = HaState.from_status(status, heat_w=None, heat_today_kwh=0.5)
    assert state == HaState(HeatMode.QUIET, False, 19.5, 21.0, False, None, 0.5)


def test_commands_as_home_assistant_sends_them(
    broker: Mosquitto, ha: Watcher, bridges: list[HaBridge]
) -> None:
    heater = Heater()
    bridge = _bridge(broker, heater, bridges)
    bridge.publish(heater.state)
    ha.wait_for(f"{BASE}/availability", lambda m: m.text == "online")

    def send(leaf: str, payload: str, then_topic: str, then: str) -> None:
        ha.clear()
        ha.publish(f"{BASE}/{leaf}", payload)  # Home Assistant publishes commands unretained
        ha.wait_for(f"{BASE}/{then_topic}", lambda m: m.text == then)

    send("target_temperature/set", "22.5", "target_temperature", "22.5")
    send("mode/set", "auto", "mode", "auto")
    send("mode/set", "off", "action", "off")
    send("preset/set", "quiet", "preset", "quiet")
    send("mode/set", "heat", "preset", "quiet")  # heat is how quiet shows: it stays quiet
    send("preset/set", "boost", "preset", "boost")
    send("preset/set", "none", "preset", "none")  # no preset: the boost ends, and quiet too
    assert heater.calls == [
        ("setpoint", 22.5),
        ("mode", HeatMode.EARN_FIRST),
        ("mode", HeatMode.OFF),
        ("mode", HeatMode.QUIET),
        ("boost", 60),
        ("boost", 0),
        ("mode", HeatMode.HEAT_FIRST),
    ]
    assert heater.state.mode is HeatMode.HEAT_FIRST and heater.state.target_c == 22.5


def test_bad_commands_are_logged_and_ignored(
    broker: Mosquitto,
    ha: Watcher,
    bridges: list[HaBridge],
    caplog: pytest.LogCaptureFixture,
) -> None:
    heater = Heater()
    bridge = _bridge(broker, heater, bridges)
    bridge.publish(heater.state)
    ha.wait_for(f"{BASE}/availability", lambda m: m.text == "online")
    caplog.set_level("INFO", logger="heatshare.agent.home_assistant")
    bad = [
        ("target_temperature/set", "warm", "not a number"),
        ("target_temperature/set", "45", "not between 5 and 30 °C"),
        ("target_temperature/set", "nan", "not between 5 and 30 °C"),
        ("mode/set", "cool", "not one of off, heat, auto"),
        ("preset/set", "eco", "not one of quiet, boost, none"),
        ("mode/set", b"\xff", "that is not text"),
    ]
    for leaf, payload, why in bad:
        ha.publish(f"{BASE}/{leaf}", payload)
        wait_until(lambda w=why: w in caplog.text, what=f"{why!r} logged")
    assert heater.calls == []
    assert all(r.levelname == "INFO" for r in caplog.records)

    # The agent refusing a command (a ValueError) is logged too, and the truth shown again.
    heater.refuse = ValueError("the setpoint cannot change while the heater is off")
    ha.clear()
    ha.publish(f"{BASE}/target_temperature/set", "21")
    wait_until(lambda: "was refused: the setpoint cannot change" in caplog.text)
    ha.wait_for(f"{BASE}/target_temperature", lambda m: m.text == "20.5")

    heater.refuse = None  # still listening after all that
    ha.publish(f"{BASE}/target_temperature/set", "19")
    ha.wait_for(f"{BASE}/target_temperature", lambda m: m.text == "19.0")


def test_a_callback_that_fails_is_logged_not_fatal(
    broker: Mosquitto, ha: Watcher, bridges: list[HaBridge], expect_log: Callable[[str], None]
) -> None:
    expect_log(r"the command '21' on heatshare/study-pc/target_temperature/set failed")
    heater = Heater()
    bridge = _bridge(broker, heater, bridges)
    bridge.publish(heater.state)
    ha.wait_for(f"{BASE}/availability", lambda m: m.text == "online")
    heater.refuse = RuntimeError("a bug")
    ha.publish(f"{BASE}/target_temperature/set", "21")
    wait_until(lambda: heater.calls, what="the callback called")
    heater.refuse = None
    ha.publish(f"{BASE}/mode/set", "auto")
    ha.wait_for(f"{BASE}/mode", lambda m: m.text == "auto")


def test_sensors_are_paced_and_only_changes_sent(
    broker: Mosquitto, ha: Watcher, bridges: list[HaBridge]
) -> None:
    clock = [100.0]
    bridge = _bridge(broker, Heater(), bridges, mono=lambda: clock[0], sensor_period_s=10.0)
    ha.wait_for(f"{BASE}/availability", lambda m: m.text == "online")
    bridge.publish(STATE)
    ha.wait_for(f"{BASE}/heat_output", lambda m: m.text == "231")
    bridge.publish(replace(STATE, heat_w=300.0, current_c=20.2))
    ha.wait_for(f"{BASE}/current_temperature", lambda m: m.text == "20.20")
    clock[0] += 10.0
    bridge.publish(replace(STATE, heat_w=310.0, current_c=20.2))
    ha.wait_for(f"{BASE}/heat_output", lambda m: m.text == "310")
    time.sleep(0.3)
    outputs = [m.text for m in ha.messages if m.topic == f"{BASE}/heat_output"]
    assert outputs == ["231", "310"]  # 300 fell within the period
    currents = [m.text for m in ha.messages if m.topic == f"{BASE}/current_temperature"]
    assert currents == ["20.14", "20.20"]  # the same value twice is sent once


def test_home_assistant_restart_gets_the_configs_again(
    broker: Mosquitto, ha: Watcher, bridges: list[HaBridge]
) -> None:
    bridge = _bridge(broker, Heater(), bridges)
    bridge.publish(STATE)
    _config(ha, CLIMATE)
    ha.wait_for(f"{BASE}/mode")
    ha.clear()
    ha.publish("homeassistant/status", "online")  # Home Assistant's birth message
    _config(ha, CLIMATE)
    assert ha.wait_for(f"{BASE}/mode").text == "heat"


def test_stop_marks_offline_and_remove_deletes_the_entities(
    broker: Mosquitto, ha: Watcher, bridges: list[HaBridge]
) -> None:
    bridge = _bridge(broker, Heater(), bridges)
    ha.wait_for(f"{BASE}/availability", lambda m: m.text == "online")
    bridge.stop()
    ha.wait_for(f"{BASE}/availability", lambda m: m.text == "offline")

    again = _bridge(broker, Heater(), bridges)
    ha.clear()
    ha.wait_for(f"{BASE}/availability", lambda m: m.text == "online")
    again.stop(remove=True)
    for topic in (CLIMATE, HEAT_OUTPUT, HEAT_TODAY):
        ha.wait_for(topic, lambda m: m.payload == b"")


def test_broker_restart_reconnects_and_announces_again(
    broker: Mosquitto, ha: Watcher, bridges: list[HaBridge]
) -> None:
    bridge = _bridge(broker, Heater(), bridges)
    bridge.publish(STATE)
    ha.wait_for(f"{BASE}/mode")
    ha.close()
    broker.restart(down_s=1.0)  # persistence is off: the broker forgot every retained message
    wait_until(lambda: not bridge.connected and bridge.error, what="the loss noticed")
    late = Watcher(broker.port, ("homeassistant/#", "heatshare/#"))
    try:
        _config(late, CLIMATE)
        assert late.wait_for(f"{BASE}/mode", timeout=40).text == "heat"
        assert late.wait_for(f"{BASE}/availability").text == "online"
    finally:
        late.close()


_DIES = """
import sys, time
from heatshare.agent.home_assistant import HaBridge, HaState
from heatshare.protocol.heating import HeatMode, MqttSource
cfg = MqttSource(host="127.0.0.1", port=int(sys.argv[1]), topic="t")
b = HaBridge(cfg, node_key=sys.argv[2], name="Doomed", on_mode=print, on_setpoint=print)
b.start()
while not b.connected:
    time.sleep(0.02)
print("connected", flush=True)
time.sleep(60)
"""


def test_last_will_marks_the_heater_offline_when_the_agent_dies(
    broker: Mosquitto, ha: Watcher
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _DIES, str(broker.port), KEY],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"connected\n"
        ha.wait_for(f"{BASE}/availability", lambda m: m.text == "online")
        ha.clear()
        proc.send_signal(signal.SIGKILL)  # no goodbye: only the broker's last will speaks
        proc.wait(5)
        msg = ha.wait_for(f"{BASE}/availability", timeout=10)
        assert (msg.text, msg.retain) == ("offline", False)  # a will arrives live to a subscriber
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()
    # And a newcomer (Home Assistant starting later) reads the retained "offline".
    late = Watcher(broker.port, (f"{BASE}/availability",))
    try:
        msg = late.wait_for(f"{BASE}/availability")
        assert (msg.text, msg.retain) == ("offline", True)
    finally:
        late.close()


def test_node_key_must_fit_a_topic() -> None:
    cfg = MqttSource(host="127.0.0.1", topic="t")
    with pytest.raises(ValueError, match="letters, digits"):
        HaBridge(cfg, node_key="a/b", name="x", on_mode=print, on_setpoint=print)


def test_stop_while_the_broker_is_gone(broker: Mosquitto, bridges: list[HaBridge]) -> None:
    bridge = _bridge(broker, Heater(), bridges)
    wait_until(lambda: bridge.connected, what="connected")
    bridge.publish(STATE)
    broker.stop()
    started = time.monotonic()
    bridge.stop(timeout_s=1.0)  # no broker to say goodbye to: no exception, no long wait
    assert time.monotonic() - started < 2.5  # the goodbye's 1 s, and paho's loop ending
    assert not bridge.connected
